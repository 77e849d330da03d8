"""SMS and message content policy: blocked words, link spacing and count, encoding and length, China
signature and unsubscribe rules. Pure functions; the only file access is in listfiles."""

from gateway.domain.content.carriers import carrier_list_key, carrier_name
from gateway.domain.content.encoding import SmsLength, measure_sms
from gateway.domain.content.fields import MAIN_FIELD, TEXT_FIELDS, check_fields
from gateway.domain.content.folding import fold
from gateway.domain.content.listfiles import BlocklistError, load_blocklist_dir, parse_blocklist
from gateway.domain.content.policy import (
    RULES,
    ContentReport,
    ContentRules,
    Violation,
    check_content,
    china_marketing_rules,
)
from gateway.domain.content.signature import COMMON_UNSUBSCRIBE_SUFFIXES, SignatureRule
from gateway.domain.content.words import Severity, WordLists, list_scope, validate_word_list

__all__ = [
    "COMMON_UNSUBSCRIBE_SUFFIXES",
    "MAIN_FIELD",
    "RULES",
    "TEXT_FIELDS",
    "BlocklistError",
    "ContentReport",
    "ContentRules",
    "Severity",
    "SignatureRule",
    "SmsLength",
    "Violation",
    "WordLists",
    "carrier_list_key",
    "carrier_name",
    "check_content",
    "check_fields",
    "china_marketing_rules",
    "fold",
    "list_scope",
    "load_blocklist_dir",
    "measure_sms",
    "parse_blocklist",
    "validate_word_list",
]
