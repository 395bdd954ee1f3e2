"""Time codes, the key schedule and secret handling."""

from tokenward.keys.keyring import Keyring, Purpose, derive_key
from tokenward.keys.secret import Secret
from tokenward.keys.timecode import TimeCode, align_label

__all__ = ["Keyring", "Purpose", "Secret", "TimeCode", "align_label", "derive_key"]
