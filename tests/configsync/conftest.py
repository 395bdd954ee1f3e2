from tests.s3server import moto_auth_url, moto_url, s3_config

__all__ = ["moto_auth_url", "moto_url", "s3_config"]
