"""Every machine-readable error code tokenward sends, with its HTTP status and meaning.

One registry for the ``code`` of every :class:`tokenward.errors.TokenwardError` (the ``error`` member of a JSON
error body, the ``code`` a CLI prints). Raising sites pass a member (``code=ErrorCode.APPTOKEN_EXPIRED``) and code
that branches on an error compares with a member, never with a string literal. Members are ``str`` (``StrEnum``):
on the wire, in logs and in f-strings they are the same strings as before, and rendering one costs nothing.

``docs/errors.md`` lists every member with :attr:`ErrorCode.status` and :attr:`ErrorCode.meaning`;
``tests/test_errorcodes.py`` keeps the two in step and checks that src raises no code outside the registry.
The status is the usual one: the exception class raised decides the status of a response.
"""

from __future__ import annotations

from enum import StrEnum, unique

__all__ = ["ErrorCode"]


@unique
class ErrorCode(StrEnum):
    """A stable machine-readable error code (see docs/errors.md)."""

    AEAD_UNSUPPORTED = "aead_unsupported"
    APP_HASH_MALFORMED = "app_hash_malformed"
    APPTOKEN_BUSY = "apptoken_busy"
    APPTOKEN_CHECKSUM = "apptoken_checksum"
    APPTOKEN_EXPIRED = "apptoken_expired"
    APPTOKEN_INVALID = "apptoken_invalid"
    APPTOKEN_KEY_INVALID = "apptoken_key_invalid"
    APPTOKEN_LIMIT = "apptoken_limit"
    APPTOKEN_MALFORMED = "apptoken_malformed"
    APPTOKEN_NOT_FOUND = "apptoken_not_found"
    APPTOKEN_REVOKED = "apptoken_revoked"
    AUTHENTICATION_REQUIRED = "authentication_required"
    AUTHORIZATION_MALFORMED = "authorization_malformed"
    BAD_CONTENT_LENGTH = "bad_content_length"
    BAD_REQUEST = "bad_request"
    BLOB_NAME_INVALID = "blob_name_invalid"
    BLOB_UNREADABLE = "blob_unreadable"
    BLOB_UNWRITABLE = "blob_unwritable"
    BUNDLE_INVALID = "bundle_invalid"
    BUNDLE_MANIFEST_INVALID = "bundle_manifest_invalid"
    BUNDLE_MISMATCH = "bundle_mismatch"
    BUNDLE_OBJECT_MISSING = "bundle_object_missing"
    BUNDLE_POLICY_INVALID = "bundle_policy_invalid"
    CAPTCHA_ATTEMPTS_EXHAUSTED = "captcha_attempts_exhausted"
    CAPTCHA_DENIED = "captcha_denied"
    CAPTCHA_EXPIRED = "captcha_expired"
    CAPTCHA_MISMATCH = "captcha_mismatch"
    CAPTCHA_RATE_LIMITED = "captcha_rate_limited"
    CAPTCHA_UNKNOWN = "captcha_unknown"
    CAPTCHA_UNREADABLE = "captcha_unreadable"
    CAPTCHA_USED = "captcha_used"
    CAPTCHA_WRONG_CODE = "captcha_wrong_code"
    CHALLENGE_MISMATCH = "challenge_mismatch"
    CHALLENGE_UNKNOWN = "challenge_unknown"
    CHALLENGE_USED = "challenge_used"
    CHANGES_STALE = "changes_stale"
    CLIENT_ACCESS_DENIED = "client_access_denied"
    CLIENT_ID_MALFORMED = "client_id_malformed"
    CLIENT_IDS_INVALID = "client_ids_invalid"
    CLIENT_IDS_UNREADABLE = "client_ids_unreadable"
    CLIENT_NAME_INVALID = "client_name_invalid"
    CLIENT_NAME_TAKEN = "client_name_taken"
    CLIENT_NOT_ALLOWED = "client_not_allowed"
    CLIENT_TOKEN_EXPIRED = "client_token_expired"
    CLIENT_TOKEN_FOREIGN = "client_token_foreign"
    CLIENT_TOKEN_INVALID = "client_token_invalid"
    CLIENT_TOKEN_MISSING = "client_token_missing"
    CLIENT_TOKEN_NOT_FOR_ME = "client_token_not_for_me"
    CLIENT_TOKEN_NOT_YET_VALID = "client_token_not_yet_valid"
    CLIENT_TOKEN_WRONG_DESTINATION = "client_token_wrong_destination"
    CLIENT_UNKNOWN = "client_unknown"
    CONFIG_INVALID = "config_invalid"
    CONFIG_KEY_INVALID = "config_key_invalid"
    CONFIG_KEY_MISSING = "config_key_missing"
    CONFIG_KEY_WRONG = "config_key_wrong"
    CONFIG_TOKEN_ALREADY_REVOKED = "config_token_already_revoked"
    CONFIG_TOKEN_EXPIRED = "config_token_expired"
    CONFIG_TOKEN_ID_INVALID = "config_token_id_invalid"
    CONFIG_TOKEN_INVALID = "config_token_invalid"
    CONFIG_TOKEN_JTI_INVALID = "config_token_jti_invalid"
    CONFIG_TOKEN_KEY_UNKNOWN = "config_token_key_unknown"
    CONFIG_TOKEN_MISSING = "config_token_missing"
    CONFIG_TOKEN_NO_JTI = "config_token_no_jti"
    CONFIG_TOKEN_NOT_FOUND = "config_token_not_found"
    CONFIG_TOKEN_PLAIN_REFUSED = "config_token_plain_refused"
    CONFIG_TOKEN_POINTER_LOOP = "config_token_pointer_loop"
    CONFIG_TOKEN_REVOKED = "config_token_revoked"
    CONFIG_TOKEN_SCHEMA = "config_token_schema"
    CONFIG_TOKEN_STORE_ERROR = "config_token_store_error"
    CONFIG_TOKEN_STORE_UNAVAILABLE = "config_token_store_unavailable"
    CONFIG_TOKEN_STORE_UNKNOWN = "config_token_store_unknown"
    CONFLICT = "conflict"
    CSRF_INVALID = "csrf_invalid"
    DATA_DIR_UNUSABLE = "data_dir_unusable"
    DECISION_LOG_DISABLED = "decision_log_disabled"
    DECISION_LOG_UNAVAILABLE = "decision_log_unavailable"
    DESTINATION_INVALID = "destination_invalid"
    DESTINATION_UNKNOWN = "destination_unknown"
    DOCUMENT_INVALID = "document_invalid"
    DOCUMENT_TOO_LARGE = "document_too_large"
    DOCUMENT_UNREADABLE = "document_unreadable"
    DUPLICATE_PARAMETER = "duplicate_parameter"
    EAS_TOKEN_INVALID = "eas_token_invalid"
    EAS_UNMAPPABLE = "eas_unmappable"
    EMAIL_INVALID = "email_invalid"
    ENROLLMENT_CODE_INVALID = "enrollment_code_invalid"
    ENROLLMENT_RATE_LIMITED = "enrollment_rate_limited"
    ERROR = "error"
    EXPIRY_INVALID = "expiry_invalid"
    EXPIRY_TOO_LONG = "expiry_too_long"
    EXTRA_MISSING = "extra_missing"
    FIELD_TOO_LONG = "field_too_long"
    FINGERPRINT_MISMATCH = "fingerprint_mismatch"
    FORBIDDEN = "forbidden"
    FORM_INVALID = "form_invalid"
    FORWARDED_HEADER_INVALID = "forwarded_header_invalid"
    HEADER_VALUE_INVALID = "header_value_invalid"
    HEADERS_TOO_LARGE = "headers_too_large"
    HOST_CONFIG_INVALID = "host_config_invalid"
    HOST_DIR_UNWRITABLE = "host_dir_unwritable"
    HOST_LOGIN_REFUSED = "host_login_refused"
    HOST_MISMATCH = "host_mismatch"
    HOST_SESSION_REQUIRED = "host_session_required"
    HTTP_ERROR = "http_error"
    IMAGE_UNREADABLE = "image_unreadable"
    IMPERSONATION_DISABLED = "impersonation_disabled"
    IMPERSONATION_FORBIDDEN = "impersonation_forbidden"
    INSECURE_FILE = "insecure_file"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    INTERNAL_ERROR = "internal_error"
    INVALID_ACTION = "invalid_action"
    INVALID_ACTOR = "invalid_actor"
    INVALID_BEFORE = "invalid_before"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_LIMIT = "invalid_limit"
    INVALID_REQUEST = "invalid_request"
    INVALID_SINCE = "invalid_since"
    INVALID_TOKEN = "invalid_token"
    INVALID_UNTIL = "invalid_until"
    ISSUER_ERROR = "issuer_error"
    ISSUER_UNREACHABLE = "issuer_unreachable"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    KEYFILE_EXISTS = "keyfile_exists"
    KEYFILE_INVALID = "keyfile_invalid"
    KEYFILE_UNREADABLE = "keyfile_unreadable"
    KEYFILE_UNWRITABLE = "keyfile_unwritable"
    LABEL_INVALID = "label_invalid"
    LOGIN_DENIED = "login_denied"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MISSING_X_FORWARDED_HOST = "missing_x_forwarded_host"
    MISSING_X_FORWARDED_METHOD = "missing_x_forwarded_method"
    MISSING_X_FORWARDED_PROTO = "missing_x_forwarded_proto"
    MISSING_X_FORWARDED_URI = "missing_x_forwarded_uri"
    MISSING_X_ORIGINAL_METHOD = "missing_x_original_method"
    MODE_INVALID = "mode_invalid"
    NOT_ADMIN = "not_admin"
    NOT_ENROLLED = "not_enrolled"
    NOT_FOUND = "not_found"
    NOT_LOGGED_IN = "not_logged_in"
    NOT_READY = "not_ready"
    OIDC_CLIENT_NAME_INVALID = "oidc_client_name_invalid"
    OIDC_CLIENT_NAME_TAKEN = "oidc_client_name_taken"
    OIDC_CLIENT_PUBLIC = "oidc_client_public"
    OIDC_CLIENT_UNKNOWN = "oidc_client_unknown"
    OIDC_REDIRECT_URI_INVALID = "oidc_redirect_uri_invalid"
    ORIGIN_MALFORMED = "origin_malformed"
    ORIGIN_MISSING = "origin_missing"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    PARAM_INVALID = "param_invalid"
    PARAMETER_CONFLICT = "parameter_conflict"
    PASSPHRASE_EMPTY = "passphrase_empty"
    PASSPHRASE_WRONG = "passphrase_wrong"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    PKCE_MALFORMED = "pkce_malformed"
    PKCE_MISMATCH = "pkce_mismatch"
    POKE_DENIED = "poke_denied"
    POLICY_CHECK_INCOMPLETE = "policy_check_incomplete"
    POLICY_DENIED = "policy_denied"
    POLICY_DIALECT_MISMATCH = "policy_dialect_mismatch"
    POLICY_DIALECT_UNKNOWN = "policy_dialect_unknown"
    POLICY_DIFF_EMPTY = "policy_diff_empty"
    POLICY_ENCODING = "policy_encoding"
    POLICY_FILE_TOO_LARGE = "policy_file_too_large"
    POLICY_FILE_UNKNOWN = "policy_file_unknown"
    POLICY_FILE_UNREADABLE = "policy_file_unreadable"
    POLICY_INVALID = "policy_invalid"
    POLICY_MODEL_INVALID = "policy_model_invalid"
    POLICY_NOT_LOADED = "policy_not_loaded"
    POLICY_PATTERN_TOO_LONG = "policy_pattern_too_long"
    POLICY_REGEX_INVALID = "policy_regex_invalid"
    POLICY_REGEX_UNSAFE = "policy_regex_unsafe"
    POLICY_REQUESTS_INVALID = "policy_requests_invalid"
    POLICY_ROW_INVALID = "policy_row_invalid"
    POLICY_SEGMENT_NOT_SERVED = "policy_segment_not_served"
    POLICY_SEGMENT_UNKNOWN = "policy_segment_unknown"
    POLICY_UNAVAILABLE = "policy_unavailable"
    POLICY_VALUE_TOO_LONG = "policy_value_too_long"
    PORTAL_MISSING = "portal_missing"
    PUBLIC_KEY_INVALID = "public_key_invalid"
    PUBLIC_KEY_WEAK = "public_key_weak"
    QUERY_AMBIGUOUS = "query_ambiguous"
    QUERY_ENGINE_UNKNOWN = "query_engine_unknown"
    QUERY_FAILED = "query_failed"
    QUERY_INVALID = "query_invalid"
    QUERY_NO_VALUE = "query_no_value"
    QUERY_TOO_LARGE = "query_too_large"
    QUERY_TOO_LONG = "query_too_long"
    REDIS_MISSING = "redis_missing"
    REDIS_UNAVAILABLE = "redis_unavailable"
    REDIS_URL_INVALID = "redis_url_invalid"
    REPLAY_STORE_UNAVAILABLE = "replay_store_unavailable"
    REPLAY_WINDOW_FULL = "replay_window_full"
    REQUEST_PROOF_INVALID = "request_proof_invalid"
    REQUEST_PROOF_MISSING = "request_proof_missing"
    REQUEST_REPLAYED = "request_replayed"
    REQUEST_STALE = "request_stale"
    RESOURCE_KEY_INVALID = "resource_key_invalid"
    RESOURCE_NAME_INVALID = "resource_name_invalid"
    RESOURCE_SIGNATURE_INVALID = "resource_signature_invalid"
    RESOURCE_UNKNOWN = "resource_unknown"
    RESOURCES_INVALID = "resources_invalid"
    S3_ACCESS_DENIED = "s3_access_denied"
    S3_BUCKET_MISSING = "s3_bucket_missing"
    S3_CREDENTIALS = "s3_credentials"
    S3_ERROR = "s3_error"
    S3_NOT_CONFIGURED = "s3_not_configured"
    S3_SUPPORT_MISSING = "s3_support_missing"
    S3_UNREACHABLE = "s3_unreachable"
    SCOPE_ESCALATION = "scope_escalation"
    SCOPE_INVALID = "scope_invalid"
    SCOPE_MISSING = "scope_missing"
    SCOPE_NOT_GRANTED = "scope_not_granted"
    SEALED_BODY_MALFORMED = "sealed_body_malformed"
    SEALED_BODY_UNREADABLE = "sealed_body_unreadable"
    SEALING_REQUIRED = "sealing_required"
    SECRET_MISSING = "secret_missing"
    SECRET_UNREADABLE = "secret_unreadable"
    SERVER_NAME_INVALID = "server_name_invalid"
    SERVER_NAME_MISSING = "server_name_missing"
    SERVER_REFUSED = "server_refused"
    SERVER_UNREACHABLE = "server_unreachable"
    SERVICE_UNAVAILABLE = "service_unavailable"
    SESSION_EXPIRED = "session_expired"
    SESSION_KEY_INVALID = "session_key_invalid"
    SESSION_KEY_WEAK = "session_key_weak"
    SESSION_KIND_REFUSED = "session_kind_refused"
    SESSION_REVOKED = "session_revoked"
    SETTING_INVALID = "setting_invalid"
    SETTING_UNKNOWN = "setting_unknown"
    SMTP_NOT_CONFIGURED = "smtp_not_configured"
    SMTP_UNAVAILABLE = "smtp_unavailable"
    SOURCE_IDENTIFIER_EXPIRED = "source_identifier_expired"
    SOURCE_IDENTIFIER_MALFORMED = "source_identifier_malformed"
    SOURCE_IDENTIFIER_MISSING = "source_identifier_missing"
    SOURCE_IDENTIFIER_TAMPERED = "source_identifier_tampered"
    STORAGE_CONFLICT = "storage_conflict"
    STORAGE_ERROR = "storage_error"
    STORAGE_SCHEMA_MISSING = "storage_schema_missing"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    SYSTEM_LOGIN_DENIED = "system_login_denied"
    SYSTEM_LOGIN_NO_CAPTCHA = "system_login_no_captcha"
    SYSTEM_LOGIN_UNAVAILABLE = "system_login_unavailable"
    SYSTEM_LOGIN_WRONG_CODE = "system_login_wrong_code"
    TIMECODE_CHECKSUM = "timecode_checksum"
    TIMECODE_INVALID = "timecode_invalid"
    TIMECODE_MALFORMED = "timecode_malformed"
    TIMECODE_MISMATCH = "timecode_mismatch"
    TIMECODE_MISSING = "timecode_missing"
    TIMECODE_TRUNCATED = "timecode_truncated"
    TIMECODE_VERSION = "timecode_version"
    TOKEN_REFERENCE_INVALID = "token_reference_invalid"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    TOO_MANY_REQUESTS = "too_many_requests"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_PARAMETER = "unknown_parameter"
    URI_TOO_LONG = "uri_too_long"
    URL_INVALID = "url_invalid"
    USAGE = "usage"
    USER_INVALID = "user_invalid"
    USER_NOT_FOUND = "user_not_found"
    ASK_DENIED_BY_RULE = "ask_denied_by_rule"
    ASK_NOT_ALLOWED = "ask_not_allowed"
    MALFORMED = "malformed"
    APP_TOKENS_UNAVAILABLE = "app_tokens_unavailable"
    ASSERTION_FAILED = "assertion_failed"
    CREDENTIALS_INVALID = "credentials_invalid"
    CREDENTIALS_MISSING = "credentials_missing"
    JWT_EXP_MISSING = "jwt_exp_missing"
    JWT_INVALID = "jwt_invalid"
    LDAP_UNAVAILABLE = "ldap_unavailable"
    LDAP_GROUP_DENIED = "ldap_group_denied"
    NO_PLUGIN_RAN = "no_plugin_ran"
    OIDC_CODE_MISSING = "oidc_code_missing"
    OIDC_ID_TOKEN_INVALID = "oidc_id_token_invalid"
    OIDC_PROVIDER_INVALID = "oidc_provider_invalid"
    OIDC_PROVIDER_UNAVAILABLE = "oidc_provider_unavailable"
    OIDC_PROVIDER_REFUSED = "oidc_provider_refused"
    OIDC_ACCESS_DENIED = "oidc_access_denied"
    OIDC_CODE_REFUSED = "oidc_code_refused"
    OIDC_REFRESH_REFUSED = "oidc_refresh_refused"
    OIDC_SESSION_ENDED = "oidc_session_ended"
    OIDC_SESSION_TOO_LARGE = "oidc_session_too_large"
    OIDC_STATE_MISMATCH = "oidc_state_mismatch"
    OIDC_STATE_MISSING = "oidc_state_missing"
    OIDC_USERINFO_REFUSED = "oidc_userinfo_refused"
    OIDC_SIGNED_IN = "oidc_signed_in"
    OIDC_SIGNED_OUT = "oidc_signed_out"
    REDIRECT = "redirect"
    REQUEST_HEADER_REJECTED = "request_header_rejected"
    REQUEST_PARAM_REJECTED = "request_param_rejected"
    SESSIONS_UNAVAILABLE = "sessions_unavailable"
    FORWARD_REFUSED = "forward_refused"
    FORWARD_UNAVAILABLE = "forward_unavailable"

    @property
    def status(self) -> int:
        """The HTTP status this code is usually sent with."""
        return _INFO[self][0]

    @property
    def meaning(self) -> str:
        """One line for the docs: what went wrong."""
        return _INFO[self][1]


_INFO: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.AEAD_UNSUPPORTED: (400, "the captcha AEAD is not one this server supports"),
    ErrorCode.APP_HASH_MALFORMED: (400, "app_hash must be 128 hexadecimal characters (SHA-512)"),
    ErrorCode.APPTOKEN_BUSY: (503, "another app token create for this user held the database lock too long; retry"),
    ErrorCode.APPTOKEN_CHECKSUM: (401, "the app token's checksum does not match: it was mistyped or truncated"),
    ErrorCode.APPTOKEN_EXPIRED: (401, "this app token has expired"),
    ErrorCode.APPTOKEN_INVALID: (401, "invalid user name or app token"),
    ErrorCode.APPTOKEN_KEY_INVALID: (500, "the app token key file holds fewer than 32 bytes"),
    ErrorCode.APPTOKEN_LIMIT: (409, "the user already holds the maximum number of live app tokens"),
    ErrorCode.APPTOKEN_MALFORMED: (401, "the app token is too long to be a tokenward app token"),
    ErrorCode.APPTOKEN_NOT_FOUND: (404, "no such app token"),
    ErrorCode.APPTOKEN_REVOKED: (401, "this app token was deleted"),
    ErrorCode.AUTHENTICATION_REQUIRED: (401, "this endpoint needs a credential"),
    ErrorCode.AUTHORIZATION_MALFORMED: (401, "the Authorization header is malformed"),
    ErrorCode.BAD_CONTENT_LENGTH: (400, "Content-Length header is not a non-negative integer"),
    ErrorCode.BAD_REQUEST: (400, "the request is malformed"),
    ErrorCode.BLOB_NAME_INVALID: (503, "a blob name is not allowed"),
    ErrorCode.BLOB_UNREADABLE: (503, "a blob file cannot be read"),
    ErrorCode.BLOB_UNWRITABLE: (503, "a blob file cannot be written"),
    ErrorCode.BUNDLE_INVALID: (500, "a shared config bundle is incomplete, altered or sealed with another key"),
    ErrorCode.BUNDLE_MANIFEST_INVALID: (500, "the bundle manifest is implausibly large"),
    ErrorCode.BUNDLE_MISMATCH: (500, "the bundle manifest's digest does not match its objects"),
    ErrorCode.BUNDLE_OBJECT_MISSING: (500, "an object named by the bundle manifest is missing from the bucket"),
    ErrorCode.BUNDLE_POLICY_INVALID: (500, "the config bundle has a bad policy"),
    ErrorCode.CAPTCHA_ATTEMPTS_EXHAUSTED: (429, "this captcha had too many wrong attempts; request a new one"),
    ErrorCode.CAPTCHA_DENIED: (403, "the captcha policy does not allow this e-mail address"),
    ErrorCode.CAPTCHA_EXPIRED: (401, "this captcha has expired"),
    ErrorCode.CAPTCHA_MISMATCH: (401, "the captcha was made for another subject or server; refusing to answer"),
    ErrorCode.CAPTCHA_RATE_LIMITED: (429, "too many captchas were requested; wait Retry-After seconds"),
    ErrorCode.CAPTCHA_UNKNOWN: (404, "no such captcha"),
    ErrorCode.CAPTCHA_UNREADABLE: (
        400,
        "not a tokenward captcha (expected TWC1.<id>.<data> or TWC2.<aead>.<id>.<data>)",
    ),
    ErrorCode.CAPTCHA_USED: (409, "this captcha was already used"),
    ErrorCode.CAPTCHA_WRONG_CODE: (401, "wrong captcha code; the detail says how many attempts are left"),
    ErrorCode.CHALLENGE_MISMATCH: (401, "the challenge does not match"),
    ErrorCode.CHALLENGE_UNKNOWN: (404, "no such login challenge"),
    ErrorCode.CHALLENGE_USED: (409, "this challenge was already used"),
    ErrorCode.CLIENT_ACCESS_DENIED: (403, "clientappspolicy.csv does not allow this app for this client ID"),
    ErrorCode.CLIENT_ID_MALFORMED: (400, "client_id must be 40 hexadecimal characters"),
    ErrorCode.CLIENT_IDS_INVALID: (500, "the client ID file is damaged"),
    ErrorCode.CLIENT_IDS_UNREADABLE: (500, "the client ID file cannot be read"),
    ErrorCode.CLIENT_NAME_INVALID: (400, "a client app name must be 1 to 100 characters"),
    ErrorCode.CLIENT_NAME_TAKEN: (409, "a client app with this name already exists"),
    ErrorCode.CLIENT_NOT_ALLOWED: (403, "this resource server does not accept requests from this client app"),
    ErrorCode.CLIENT_TOKEN_EXPIRED: (401, "the client token has expired: ask the issuer for a new one"),
    ErrorCode.CLIENT_TOKEN_FOREIGN: (401, "the client token was issued by another server"),
    ErrorCode.CLIENT_TOKEN_INVALID: (401, "the client token is malformed or its signature is wrong"),
    ErrorCode.CLIENT_TOKEN_MISSING: (401, "send the client token as `Authorization: Bearer …`"),
    ErrorCode.CLIENT_TOKEN_NOT_FOR_ME: (401, "this client token does not name this key"),
    ErrorCode.CLIENT_TOKEN_NOT_YET_VALID: (
        401,
        "the client token is not valid yet: compare this clock with the issuer's",
    ),
    ErrorCode.CLIENT_TOKEN_WRONG_DESTINATION: (401, "the client token is for another resource"),
    ErrorCode.CLIENT_UNKNOWN: (404, "unknown client ID"),
    ErrorCode.CONFIG_INVALID: (500, "a setting or configuration file is invalid"),
    ErrorCode.CONFIG_KEY_INVALID: (500, "TOKENWARD_CONFIG_KEY is not 32 bytes of base64url"),
    ErrorCode.CONFIG_KEY_MISSING: (500, "--seal-policies needs TOKENWARD_CONFIG_KEY"),
    ErrorCode.CONFIG_KEY_WRONG: (500, "a bundle object does not open with TOKENWARD_CONFIG_KEY"),
    ErrorCode.CHANGES_STALE: (
        503,
        "this instance has not read the change log within TOKENWARD_CHANGES_MAX_LAG_SECONDS and refuses "
        "credentials it can no longer vouch for",
    ),
    ErrorCode.CONFIG_TOKEN_ALREADY_REVOKED: (409, "the config token is already revoked"),
    ErrorCode.CONFIG_TOKEN_EXPIRED: (400, "the config token has expired"),
    ErrorCode.CONFIG_TOKEN_ID_INVALID: (400, "config_token_id has characters or a length a store does not accept"),
    ErrorCode.CONFIG_TOKEN_INVALID: (400, "the config token is malformed or its signature is wrong"),
    ErrorCode.CONFIG_TOKEN_JTI_INVALID: (400, "the config token id to revoke is not a valid jti"),
    ErrorCode.CONFIG_TOKEN_KEY_UNKNOWN: (
        400,
        "the config token was made under a time code this server no longer accepts",
    ),
    ErrorCode.CONFIG_TOKEN_MISSING: (
        400,
        "give config_token, or config_token_store_id and config_token_id (or their _query variants)",
    ),
    ErrorCode.CONFIG_TOKEN_NO_JTI: (400, "this token has no jti and cannot be revoked"),
    ErrorCode.CONFIG_TOKEN_NOT_FOUND: (404, "the config token store holds no such config token"),
    ErrorCode.CONFIG_TOKEN_PLAIN_REFUSED: (400, "the store holds a plain document but does not set allow_plain"),
    ErrorCode.CONFIG_TOKEN_POINTER_LOOP: (400, "too many config token pointers in a row"),
    ErrorCode.CONFIG_TOKEN_REVOKED: (403, "this config token was revoked"),
    ErrorCode.CONFIG_TOKEN_SCHEMA: (400, "the document must be an object with a tokenward key"),
    ErrorCode.CONFIG_TOKEN_STORE_ERROR: (503, "the config token store query failed or selects no token column"),
    ErrorCode.CONFIG_TOKEN_STORE_UNAVAILABLE: (503, "the config token database cannot be reached"),
    ErrorCode.CONFIG_TOKEN_STORE_UNKNOWN: (400, "no such config token store is declared"),
    ErrorCode.CONFLICT: (409, "the request conflicts with the current state"),
    ErrorCode.CSRF_INVALID: (403, "the form's security token is missing"),
    ErrorCode.DATA_DIR_UNUSABLE: (500, "the data dir (TOKENWARD_DATA_DIR) cannot be created"),
    ErrorCode.DECISION_LOG_DISABLED: (404, "the decision log is off on this instance"),
    ErrorCode.DECISION_LOG_UNAVAILABLE: (400, "the database schema is not current (no decision_log table?)"),
    ErrorCode.DESTINATION_INVALID: (400, "destination must be an e-mail address or a resource name"),
    ErrorCode.DESTINATION_UNKNOWN: (404, "the destination has no active session under this client ID"),
    ErrorCode.DOCUMENT_INVALID: (400, "the document is neither JSON nor YAML"),
    ErrorCode.DOCUMENT_TOO_LARGE: (400, "the document is larger than allowed"),
    ErrorCode.DOCUMENT_UNREADABLE: (400, "the document file cannot be read"),
    ErrorCode.DUPLICATE_PARAMETER: (400, "a parameter is given more than once"),
    ErrorCode.EAS_TOKEN_INVALID: (400, "the eas token is empty or too long"),
    ErrorCode.EAS_UNMAPPABLE: (400, "no plugin of this eas token can be carried over"),
    ErrorCode.EMAIL_INVALID: (400, "email is not an e-mail address"),
    ErrorCode.ENROLLMENT_CODE_INVALID: (401, "the enrolment code is wrong, used or expired"),
    ErrorCode.ENROLLMENT_RATE_LIMITED: (429, "too many enrolment e-mails were requested; wait Retry-After seconds"),
    ErrorCode.ERROR: (500, "an unexpected error (the base of every tokenward error)"),
    ErrorCode.EXPIRY_INVALID: (400, "expiry is not a duration (e.g. 30d, 12h)"),
    ErrorCode.EXPIRY_TOO_LONG: (400, "expiry is longer than TOKENWARD_APP_TOKENS_MAX_EXPIRY"),
    ErrorCode.EXTRA_MISSING: (500, "reading QR images needs the authenticator extra"),
    ErrorCode.FIELD_TOO_LONG: (400, "a form field is longer than allowed"),
    ErrorCode.FINGERPRINT_MISMATCH: (500, "the server recorded another authenticator key; do not trust this enrolment"),
    ErrorCode.FORBIDDEN: (403, "the credential is valid but may not do this"),
    ErrorCode.FORM_INVALID: (400, "send the form as application/x-www-form-urlencoded"),
    ErrorCode.FORWARDED_HEADER_INVALID: (400, "an X-Forwarded-* header is malformed"),
    ErrorCode.HEADER_VALUE_INVALID: (400, "a response header value would hold CR, LF or NUL"),
    ErrorCode.HEADERS_TOO_LARGE: (400, "the request headers are too large"),
    ErrorCode.HOST_CONFIG_INVALID: (500, "the host configuration file is invalid"),
    ErrorCode.HOST_DIR_UNWRITABLE: (500, "the host configuration directory cannot be written"),
    ErrorCode.HOST_LOGIN_REFUSED: (500, "the server refused the host login"),
    ErrorCode.HOST_MISMATCH: (500, "the server made a captcha for another host; do not type it"),
    ErrorCode.HOST_SESSION_REQUIRED: (403, "system login is asked by a host: log in with the host's resource key"),
    ErrorCode.HTTP_ERROR: (400, "an HTTP error the framework raised that has no tokenward code"),
    ErrorCode.IMAGE_UNREADABLE: (400, "no QR code found in the image"),
    ErrorCode.IMPERSONATION_DISABLED: (
        403,
        "acting for another user is disabled on this server (TOKENWARD_APP_TOKENS_IMPERSONATION)",
    ),
    ErrorCode.IMPERSONATION_FORBIDDEN: (403, "only admins may act for another user"),
    ErrorCode.INSECURE_FILE: (500, "a secret file is readable by group or others; chmod 600 it"),
    ErrorCode.INSUFFICIENT_SCOPE: (401, "the access token was not issued for the openid scope"),
    ErrorCode.INTERNAL_ERROR: (500, "an unexpected server error; the request id is in the log"),
    ErrorCode.INVALID_ACTION: (400, "the action filter is longer than allowed"),
    ErrorCode.INVALID_ACTOR: (400, "the actor filter is longer than allowed"),
    ErrorCode.INVALID_BEFORE: (400, "the before cursor is longer than allowed"),
    ErrorCode.INVALID_CURSOR: (400, "this paging link is broken"),
    ErrorCode.INVALID_LIMIT: (400, "show: not a number of events within the page limit"),
    ErrorCode.INVALID_REQUEST: (
        422,
        "a request field is missing or has the wrong type (fields lists them); 400 from OpenID endpoints",
    ),
    ErrorCode.INVALID_SINCE: (400, "since is not a time with a time zone, or too long"),
    ErrorCode.INVALID_TOKEN: (401, "the access token is missing, too long or invalid"),
    ErrorCode.INVALID_UNTIL: (400, "until is not a time after since, or too long"),
    ErrorCode.ISSUER_ERROR: (503, "tokenward answered with something that is not a JSON object"),
    ErrorCode.ISSUER_UNREACHABLE: (503, "tokenward cannot be reached; check its URL and that it is running"),
    ErrorCode.JWKS_UNAVAILABLE: (503, "the issuer's signing keys cannot be fetched and no recent copy is cached"),
    ErrorCode.KEYFILE_EXISTS: (500, "the authenticator key file already exists; use --force"),
    ErrorCode.KEYFILE_INVALID: (500, "the authenticator key file is damaged or not a tokenward key file"),
    ErrorCode.KEYFILE_UNREADABLE: (500, "the authenticator key file cannot be read"),
    ErrorCode.KEYFILE_UNWRITABLE: (500, "the authenticator key file cannot be written"),
    ErrorCode.LABEL_INVALID: (400, "label is too long or holds unprintable characters"),
    ErrorCode.LOGIN_DENIED: (403, "the user policy does not allow this login to this client app"),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "the endpoint does not answer this HTTP method (see Allow)"),
    ErrorCode.MISSING_X_FORWARDED_HOST: (400, "the proxy did not send X-Forwarded-Host"),
    ErrorCode.MISSING_X_FORWARDED_METHOD: (400, "the proxy did not send X-Forwarded-Method"),
    ErrorCode.MISSING_X_FORWARDED_PROTO: (400, "the proxy did not send X-Forwarded-Proto"),
    ErrorCode.MISSING_X_FORWARDED_URI: (400, "the proxy did not send X-Forwarded-Uri"),
    ErrorCode.MISSING_X_ORIGINAL_METHOD: (400, "the proxy did not send X-Original-Method"),
    ErrorCode.MODE_INVALID: (400, "the host login mode is not one tokenward knows"),
    ErrorCode.NOT_ADMIN: (403, "the caller is not an admin of this server"),
    ErrorCode.NOT_ENROLLED: (404, "this e-mail address has no enrolled authenticator"),
    ErrorCode.NOT_FOUND: (404, "no such endpoint or object"),
    ErrorCode.NOT_LOGGED_IN: (401, "log in first (login_captcha or login_resource)"),
    ErrorCode.NOT_READY: (503, "the server is still starting or lost its configuration"),
    ErrorCode.OIDC_CLIENT_NAME_INVALID: (400, "a client name must be 1 to 100 characters"),
    ErrorCode.OIDC_CLIENT_NAME_TAKEN: (409, "an OpenID client with this name already exists"),
    ErrorCode.OIDC_CLIENT_PUBLIC: (400, "the OpenID client is public and has no secret"),
    ErrorCode.OIDC_CLIENT_UNKNOWN: (404, "no such OpenID client"),
    ErrorCode.OIDC_REDIRECT_URI_INVALID: (400, "at most 20 redirect URIs of each kind"),
    ErrorCode.ORIGIN_MALFORMED: (400, "not an origin like https://app.example.com"),
    ErrorCode.ORIGIN_MISSING: (400, "give origin or app_hash"),
    ErrorCode.ORIGIN_NOT_ALLOWED: (403, "this origin is not registered for the client app"),
    ErrorCode.PARAM_INVALID: (400, "a numeric parameter is not a small whole number"),
    ErrorCode.PARAMETER_CONFLICT: (400, "give userID or userName, not both"),
    ErrorCode.PASSPHRASE_EMPTY: (400, "the passphrase must not be empty"),
    ErrorCode.PASSPHRASE_WRONG: (401, "wrong passphrase for the authenticator key file (or the file was altered)"),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "the request body is larger than TOKENWARD_MAX_BODY_BYTES"),
    ErrorCode.PKCE_MALFORMED: (400, "code_challenge must be an S256 PKCE challenge (43 base64url characters)"),
    ErrorCode.PKCE_MISMATCH: (401, "code_verifier does not match the code_challenge of this captcha"),
    ErrorCode.POKE_DENIED: (403, "the policy does not allow this subject to poke that one"),
    ErrorCode.POLICY_CHECK_INCOMPLETE: (400, "fill in subject, domain, object and action"),
    ErrorCode.POLICY_DENIED: (403, "the policy does not allow this action on this object"),
    ErrorCode.POLICY_DIALECT_MISMATCH: (500, "the config bundle uses another policy dialect than this instance"),
    ErrorCode.POLICY_DIALECT_UNKNOWN: (400, "the dialect is glob or compat"),
    ErrorCode.POLICY_DIFF_EMPTY: (400, "give at least one changed file or another dialect"),
    ErrorCode.POLICY_ENCODING: (400, "a policy file is not valid UTF-8"),
    ErrorCode.POLICY_FILE_TOO_LARGE: (400, "a policy file is larger than allowed"),
    ErrorCode.POLICY_FILE_UNKNOWN: (400, "unknown policy file name"),
    ErrorCode.POLICY_FILE_UNREADABLE: (400, "a policy file or samples directory cannot be read or written"),
    ErrorCode.POLICY_INVALID: (400, "a policy file or question the engine cannot handle"),
    ErrorCode.POLICY_MODEL_INVALID: (400, "the policy model file is invalid"),
    ErrorCode.POLICY_NOT_LOADED: (400, "no policy is loaded on this instance (503 for a system login)"),
    ErrorCode.POLICY_PATTERN_TOO_LONG: (400, "a policy pattern is too long"),
    ErrorCode.POLICY_REGEX_INVALID: (400, "a policy pattern is not a valid regular expression"),
    ErrorCode.POLICY_REGEX_UNSAFE: (400, "a policy pattern could make matching take exponential time"),
    ErrorCode.POLICY_REQUESTS_INVALID: (400, "a policy requests file has a bad line"),
    ErrorCode.POLICY_ROW_INVALID: (400, "a policy file row is malformed or too long"),
    ErrorCode.POLICY_SEGMENT_NOT_SERVED: (400, "this instance does not serve the asked policy segment"),
    ErrorCode.POLICY_SEGMENT_UNKNOWN: (400, "at least one policy segment must be served"),
    ErrorCode.POLICY_UNAVAILABLE: (403, "no policy is loaded"),
    ErrorCode.POLICY_VALUE_TOO_LONG: (400, "a policy question value is too long"),
    ErrorCode.PORTAL_MISSING: (503, "the portal's client app is not registered"),
    ErrorCode.PUBLIC_KEY_INVALID: (400, "public_key is not a base64url X25519 public key"),
    ErrorCode.PUBLIC_KEY_WEAK: (400, "public_key is a low-order X25519 point"),
    ErrorCode.QUERY_AMBIGUOUS: (400, "a config token query selected several values"),
    ErrorCode.QUERY_ENGINE_UNKNOWN: (400, "unknown config token query engine"),
    ErrorCode.QUERY_FAILED: (400, "a config token query failed or its output is too long"),
    ErrorCode.QUERY_INVALID: (400, "a config token query does not parse"),
    ErrorCode.QUERY_NO_VALUE: (400, "a config token query selected nothing"),
    ErrorCode.QUERY_TOO_LARGE: (400, "the /verify query string is too long"),
    ErrorCode.QUERY_TOO_LONG: (400, "a config token query is too long"),
    ErrorCode.REDIS_MISSING: (
        503,
        "TOKENWARD_REDIS_URL is set but redis-py is not installed: pip install 'tokenward[redis]'",
    ),
    ErrorCode.REDIS_UNAVAILABLE: (503, "Redis is unreachable"),
    ErrorCode.REDIS_URL_INVALID: (503, "TOKENWARD_REDIS_URL is not a redis:// or rediss:// URL"),
    ErrorCode.REPLAY_STORE_UNAVAILABLE: (503, "the replay window in Redis cannot be reached"),
    ErrorCode.REPLAY_WINDOW_FULL: (503, "the replay window is full"),
    ErrorCode.REQUEST_PROOF_INVALID: (401, "Tokenward-Proof must be `<unix seconds>.<nonce>.<tag>`"),
    ErrorCode.REQUEST_PROOF_MISSING: (
        401,
        "send a Tokenward-Proof header (tokenward.client does) or a sealed body with the client token",
    ),
    ErrorCode.REQUEST_REPLAYED: (401, "this request was already received once (a replay)"),
    ErrorCode.REQUEST_STALE: (
        401,
        "the request timestamp is too far from this server's clock (a replay, or clocks out of sync)",
    ),
    ErrorCode.RESOURCE_KEY_INVALID: (400, "the resource key must be Ed25519"),
    ErrorCode.RESOURCE_NAME_INVALID: (400, "a resource name is a DNS-like name such as api.example.com"),
    ErrorCode.RESOURCE_SIGNATURE_INVALID: (401, "the resource login signature is wrong"),
    ErrorCode.RESOURCE_UNKNOWN: (404, "unknown resource"),
    ErrorCode.RESOURCES_INVALID: (500, "the resources file is damaged"),
    ErrorCode.S3_ACCESS_DENIED: (
        503,
        "S3 denied access; grant the key s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject",
    ),
    ErrorCode.S3_BUCKET_MISSING: (503, "the S3 bucket does not exist; create it or fix TOKENWARD_S3_BUCKET"),
    ErrorCode.S3_CREDENTIALS: (503, "no S3 credentials; set TOKENWARD_S3_ACCESS_KEY and TOKENWARD_S3_SECRET_KEY"),
    ErrorCode.S3_ERROR: (503, "an S3 request failed"),
    ErrorCode.S3_NOT_CONFIGURED: (
        500,
        "no S3 bucket configured: set TOKENWARD_S3_BUCKET and its companions",
    ),
    ErrorCode.S3_SUPPORT_MISSING: (503, "S3 support needs boto3: pip install 'tokenward[s3]'"),
    ErrorCode.S3_UNREACHABLE: (503, "S3 cannot be reached; check TOKENWARD_S3_URL and the network"),
    ErrorCode.SCOPE_ESCALATION: (403, "cannot grant scopes the caller does not hold"),
    ErrorCode.SCOPE_INVALID: (400, "too many or malformed scopes"),
    ErrorCode.SCOPE_MISSING: (403, "the credential lacks the needed scope"),
    ErrorCode.SCOPE_NOT_GRANTED: (403, "the asked scopes are not granted"),
    ErrorCode.SEALED_BODY_MALFORMED: (400, "the client went away before the sealed body arrived"),
    ErrorCode.SEALED_BODY_UNREADABLE: (401, "the sealed body names another client token than the Authorization header"),
    ErrorCode.SEALING_REQUIRED: (403, "this resource server accepts sealed requests only"),
    ErrorCode.SECRET_MISSING: (500, "a secret file does not exist"),
    ErrorCode.SECRET_UNREADABLE: (500, "a secret file cannot be read"),
    ErrorCode.SERVER_NAME_INVALID: (500, "the server name file cannot be read"),
    ErrorCode.SERVER_NAME_MISSING: (500, "no server name in the data dir; run `tokenward init --server-name NAME`"),
    ErrorCode.SERVER_REFUSED: (500, "the tokenward server refused the authenticator's request"),
    ErrorCode.SERVER_UNREACHABLE: (500, "the tokenward server cannot be reached"),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "a service tokenward depends on is missing or down"),
    ErrorCode.SESSION_EXPIRED: (401, "the session has expired: log in again"),
    ErrorCode.SESSION_KEY_INVALID: (400, "session_key is not a base64url X25519 public key"),
    ErrorCode.SESSION_KEY_WEAK: (400, "session_key is a low-order X25519 point"),
    ErrorCode.SESSION_KIND_REFUSED: (401, "this kind of session may not call this endpoint"),
    ErrorCode.SESSION_REVOKED: (401, "this session was ended"),
    ErrorCode.SETTING_INVALID: (500, "a setting or the config file has an invalid value"),
    ErrorCode.SETTING_UNKNOWN: (500, "an unknown setting in the config file or environment"),
    ErrorCode.SMTP_NOT_CONFIGURED: (503, "e-mail enrolment is not configured on this server (TOKENWARD_SMTP_HOST)"),
    ErrorCode.SMTP_UNAVAILABLE: (503, "the mail server cannot be reached or refused"),
    ErrorCode.SOURCE_IDENTIFIER_EXPIRED: (401, "the source identifier has expired"),
    ErrorCode.SOURCE_IDENTIFIER_MALFORMED: (401, "the source identifier is malformed"),
    ErrorCode.SOURCE_IDENTIFIER_MISSING: (401, "send the source identifier as `Authorization: Bearer …`"),
    ErrorCode.SOURCE_IDENTIFIER_TAMPERED: (401, "the source identifier was altered or forged"),
    ErrorCode.STORAGE_CONFLICT: (409, "an app token with this id exists"),
    ErrorCode.STORAGE_ERROR: (503, "the database or blob store failed"),
    ErrorCode.STORAGE_SCHEMA_MISSING: (
        503,
        "the database schema is missing or out of date; run `tokenward db upgrade`",
    ),
    ErrorCode.STORAGE_UNAVAILABLE: (503, "the database cannot be reached"),
    ErrorCode.SYSTEM_LOGIN_DENIED: (403, "the policy does not allow this e-mail address to log in to this host"),
    ErrorCode.SYSTEM_LOGIN_NO_CAPTCHA: (401, "no outstanding captcha for this system login"),
    ErrorCode.SYSTEM_LOGIN_UNAVAILABLE: (503, "system login is not available on this server"),
    ErrorCode.SYSTEM_LOGIN_WRONG_CODE: (401, "wrong code for this system login"),
    ErrorCode.TIMECODE_CHECKSUM: (400, "time code check failed: it was mistyped or altered"),
    ErrorCode.TIMECODE_INVALID: (400, "a time code is malformed, truncated or of another version"),
    ErrorCode.TIMECODE_MALFORMED: (400, "a time code secret has the wrong length"),
    ErrorCode.TIMECODE_MISMATCH: (401, "the credential was made under a time code this server does not hold"),
    ErrorCode.TIMECODE_MISSING: (500, "no time code in the data dir; run `tokenward init`"),
    ErrorCode.TIMECODE_TRUNCATED: (
        400,
        "time code is truncated or has extra characters (the secret part must be 43 characters, the check 6)",
    ),
    ErrorCode.TIMECODE_VERSION: (400, "unsupported time code version"),
    ErrorCode.TOKEN_REFERENCE_INVALID: (400, "the token reference (id or app token) is malformed"),
    ErrorCode.TOO_MANY_ATTEMPTS: (429, "too many failed attempts"),
    ErrorCode.TOO_MANY_REQUESTS: (429, "refused for a while by regulation; wait Retry-After seconds"),
    ErrorCode.UNAUTHORIZED: (401, "no valid credential was sent"),
    ErrorCode.UNKNOWN_PARAMETER: (400, "the endpoint does not take this parameter"),
    ErrorCode.URI_TOO_LONG: (400, "X-Forwarded-Uri is too long"),
    ErrorCode.URL_INVALID: (400, "SERVER_URL must start with https:// (or http:// for local tests)"),
    ErrorCode.USAGE: (400, "give a document or --pointer, not both"),
    ErrorCode.USER_INVALID: (400, "not a valid user name (e-mail address or name of letters, digits and ._%+@:-)"),
    ErrorCode.USER_NOT_FOUND: (404, "no such user"),
    ErrorCode.ASK_DENIED_BY_RULE: (
        403,
        "a policy rule denies asking for a client token to this destination (the rule member names it)",
    ),
    ErrorCode.ASK_NOT_ALLOWED: (403, "no policy row allows asking for a client token to this destination"),
    ErrorCode.MALFORMED: (400, "a base64url field is malformed or has the wrong length"),
    ErrorCode.APP_TOKENS_UNAVAILABLE: (
        503,
        "/verify: the app_token plugin runs but app tokens are not available on this instance",
    ),
    ErrorCode.ASSERTION_FAILED: (403, "/verify: the user does not satisfy the rule's assertions"),
    ErrorCode.CREDENTIALS_INVALID: (401, "/verify: wrong user name or password"),
    ErrorCode.CREDENTIALS_MISSING: (401, "/verify: the request carries no credential a plugin of the rule reads"),
    ErrorCode.JWT_EXP_MISSING: (401, "/verify: the JWT has no exp claim"),
    ErrorCode.JWT_INVALID: (401, "/verify: the JWT is too long, malformed, or its signature or claims are refused"),
    ErrorCode.LDAP_UNAVAILABLE: (503, "/verify: the LDAP directory cannot be used"),
    ErrorCode.LDAP_GROUP_DENIED: (403, "/verify: the LDAP user is in none of the groups the site requires"),
    ErrorCode.NO_PLUGIN_RAN: (401, "/verify: every plugin of the rule was skipped"),
    ErrorCode.OIDC_CODE_MISSING: (401, "/verify: the OpenID callback carries no authorization code"),
    ErrorCode.OIDC_ID_TOKEN_INVALID: (401, "/verify: the upstream provider's ID token is missing, too long or refused"),
    ErrorCode.OIDC_PROVIDER_INVALID: (503, "/verify: the upstream OpenID provider's documents or answers are unusable"),
    ErrorCode.OIDC_PROVIDER_UNAVAILABLE: (503, "/verify: the upstream OpenID provider cannot be reached or failed"),
    ErrorCode.OIDC_PROVIDER_REFUSED: (403, "/verify: the upstream OpenID provider answered the sign-in with an error"),
    ErrorCode.OIDC_ACCESS_DENIED: (403, "/verify: the upstream OpenID provider answered access_denied"),
    ErrorCode.OIDC_CODE_REFUSED: (401, "/verify: the upstream OpenID provider refused the authorization code"),
    ErrorCode.OIDC_REFRESH_REFUSED: (401, "/verify: the upstream OpenID provider refused the refresh token"),
    ErrorCode.OIDC_SESSION_ENDED: (401, "/verify: the OpenID session ended; sign in again"),
    ErrorCode.OIDC_SESSION_TOO_LARGE: (401, "/verify: the user's claims do not fit in a cookie"),
    ErrorCode.OIDC_STATE_MISMATCH: (401, "/verify: the OpenID callback's state is not the one this sign-in sent"),
    ErrorCode.OIDC_STATE_MISSING: (401, "/verify: no OpenID sign-in is under way in this browser"),
    ErrorCode.OIDC_USERINFO_REFUSED: (401, "/verify: the upstream userinfo endpoint refused or named another subject"),
    ErrorCode.OIDC_SIGNED_IN: (302, "/verify: signed in; a redirect back to the page first asked"),
    ErrorCode.OIDC_SIGNED_OUT: (302, "/verify: signed out; a redirect to the provider's logout"),
    ErrorCode.REDIRECT: (302, "/verify: the forward service answered a redirect, passed on"),
    ErrorCode.REQUEST_HEADER_REJECTED: (401, "/verify: a request header does not satisfy the rule"),
    ErrorCode.REQUEST_PARAM_REJECTED: (401, "/verify: a query parameter does not satisfy the rule"),
    ErrorCode.SESSIONS_UNAVAILABLE: (503, "/verify: sessions are not available on this instance"),
    ErrorCode.FORWARD_REFUSED: (401, "/verify: the forward service refused the request"),
    ErrorCode.FORWARD_UNAVAILABLE: (503, "/verify: the forward service failed or cannot be reached"),
}
