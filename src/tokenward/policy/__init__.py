"""tokenward's policy engine: Casbin policy files, two pattern dialects, an indexed engine.

Importing this package reads nothing and starts nothing. Typical use::

    from tokenward.policy import PolicyHolder, can_login

    holder = PolicyHolder(data_dir, dialect="glob")
    holder.load()
    if can_login(holder.policy, "alice@example.com", "auth.example.com", client_id): ...

See ``docs/policies.md`` for the files, the dialects, split authorization, ``check`` and ``lint``,
and ``docs/policy-diff.md`` for ``diff_policies`` (what a change flips).
"""

from tokenward.policy.bundle import Policy, build_policy, load_policy
from tokenward.policy.diff import Flip, FlipGroup, PolicyDiff, diff_policies
from tokenward.policy.engine import CasbinEngine, Engine, IndexedEngine, build_engine
from tokenward.policy.explain import Explanation, NearMiss, explain
from tokenward.policy.files import CSV_FILES, MODEL_FILES, POLICY_FILES, content_version, read_sources
from tokenward.policy.lint import Finding, lint
from tokenward.policy.model import DEFAULT_MODEL, PolicyModel, Rule, parse_model
from tokenward.policy.patterns import Dialect
from tokenward.policy.probes import Probe, generate_probes, parse_requests
from tokenward.policy.questions import (
    can_ask,
    can_login,
    can_poke,
    can_system_login,
    captcha_enabled,
    client_access,
    granted_scopes,
    is_admin,
    is_user,
    resolve_scopes,
)
from tokenward.policy.reload import PolicyHolder, PolicyWatcher, ReloadResult, install_sighup
from tokenward.policy.samples import sample_files, write_samples
from tokenward.policy.segments import ALL_SEGMENTS, SHARED_FILES, Segment, parse_segments

__all__ = [
    "ALL_SEGMENTS",
    "CSV_FILES",
    "DEFAULT_MODEL",
    "MODEL_FILES",
    "POLICY_FILES",
    "SHARED_FILES",
    "CasbinEngine",
    "Dialect",
    "Engine",
    "Explanation",
    "Finding",
    "Flip",
    "FlipGroup",
    "IndexedEngine",
    "NearMiss",
    "Policy",
    "PolicyDiff",
    "PolicyHolder",
    "PolicyModel",
    "PolicyWatcher",
    "Probe",
    "ReloadResult",
    "Rule",
    "Segment",
    "build_engine",
    "build_policy",
    "can_ask",
    "can_login",
    "can_poke",
    "can_system_login",
    "captcha_enabled",
    "client_access",
    "content_version",
    "diff_policies",
    "explain",
    "generate_probes",
    "granted_scopes",
    "install_sighup",
    "is_admin",
    "is_user",
    "lint",
    "load_policy",
    "parse_model",
    "parse_requests",
    "parse_segments",
    "read_sources",
    "resolve_scopes",
    "sample_files",
    "write_samples",
]
