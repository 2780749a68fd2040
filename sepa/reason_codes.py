"""ISO 20022 external return and reject reason codes seen in SEPA credit transfers and direct debits.

The codes come back in camt.05x `RtrInf/Rsn/Cd` (returns, refunds, reversals) and in pain.002
`StsRsnInf/Rsn/Cd` (rejects). Each one maps to what the payout process should do next:

- `ask_new_iban`: the account cannot take the payment (wrong, closed, blocked, wrong name): ask the
  customer for other bank details before paying again.
- `retry`: the payment may be presented again (AM04 insufficient funds; configuration decides whether).
- `escalate`: the customer disputes or refused the payment: finance ops decides.
- `manual`: someone has to look (deceased, fraud, our own file or data at fault, regulatory).
- `cautious`: the code hides the real reason (MS03, NARR): never retry automatically, read the text.

Unknown codes give None from `reason()`: callers send them to the exceptions queue, never to a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """What the payout process does after a return or reject with a given reason."""

    ASK_NEW_IBAN = "ask_new_iban"
    RETRY = "retry"
    ESCALATE = "escalate"
    MANUAL = "manual"
    CAUTIOUS = "cautious"


SCT = "SCT"
SDD = "SDD"


@dataclass(frozen=True)
class ReasonCode:
    """One ISO external reason code: its ISO name, meaning, the schemes it occurs in and the action."""

    code: str
    name: str
    meaning: str
    schemes: frozenset[str]
    action: Action
    note: str = ""


def _code(code: str, name: str, meaning: str, schemes: str, action: Action, note: str = "") -> ReasonCode:
    return ReasonCode(code, name, meaning, frozenset(schemes.split("+")), action, note)


_A = Action
_CODES = [
    # Account wrong, closed or unusable: the customer has to give other bank details.
    _code("AC01", "IncorrectAccountNumber", "Account identifier (IBAN) incorrect or invalid", "SCT+SDD",
          _A.ASK_NEW_IBAN),
    _code("AC02", "InvalidDebtorAccountNumber", "Debtor account number invalid or missing", "SDD", _A.ASK_NEW_IBAN),
    _code("AC03", "InvalidCreditorAccountNumber", "Creditor account number invalid or missing", "SCT",
          _A.ASK_NEW_IBAN),
    _code("AC04", "ClosedAccountNumber", "Account closed", "SCT+SDD", _A.ASK_NEW_IBAN),
    _code("AC06", "BlockedAccount", "Account blocked", "SCT+SDD", _A.ASK_NEW_IBAN),
    _code("AC13", "InvalidDebtorAccountType", "Debtor account is a consumer account (not allowed for B2B)", "SDD",
          _A.ASK_NEW_IBAN),
    _code("AG01", "TransactionForbidden", "Transaction forbidden on this type of account", "SCT+SDD",
          _A.ASK_NEW_IBAN),
    _code("BE01", "InconsistentWithEndCustomer", "Name does not match the account holder", "SCT+SDD",
          _A.ASK_NEW_IBAN),
    _code("CNOR", "CreditorBankIsNotRegistered", "Creditor bank not registered or not reachable in the scheme",
          "SCT+SDD", _A.ASK_NEW_IBAN),
    _code("DNOR", "DebtorBankIsNotRegistered", "Debtor bank not registered or not reachable in the scheme",
          "SCT+SDD", _A.ASK_NEW_IBAN),
    # Money: may be presented again.
    _code("AM04", "InsufficientFunds", "Insufficient funds on the account", "SCT+SDD", _A.RETRY,
          "Re-presentation is allowed for SDD; configuration decides whether and how often."),
    _code("ED05", "SettlementFailed", "Settlement of the transaction failed", "SCT+SDD", _A.RETRY),
    # The customer disputes, refused or did not authorise.
    _code("MD01", "NoMandate", "No mandate, or unauthorised transaction", "SDD", _A.ESCALATE),
    _code("MD06", "RefundRequestByEndCustomer", "Refund requested by the debtor (disputed direct debit)", "SDD",
          _A.ESCALATE),
    _code("MS02", "NotSpecifiedReasonCustomerGenerated", "Refused by the customer, reason not given", "SCT+SDD",
          _A.ESCALATE),
    _code("CUST", "RequestedByCustomer", "Refused or recalled at the customer's request", "SCT+SDD", _A.ESCALATE),
    _code("SL01", "SpecificServiceOfferedByDebtorAgent", "Blocked by a service of the debtor's bank "
          "(creditor black- or whitelist)", "SDD", _A.ESCALATE),
    # Someone has to look.
    _code("MD07", "EndCustomerDeceased", "Account holder deceased", "SCT+SDD", _A.MANUAL),
    _code("FRAD", "FraudulentOrigin", "Fraudulent origin", "SCT+SDD", _A.MANUAL),
    _code("MD02", "MissingMandatoryInformationInMandate", "Mandate data missing or incorrect", "SDD", _A.MANUAL),
    _code("BE05", "UnrecognisedInitiatingParty", "Creditor identifier incorrect or unknown", "SDD", _A.MANUAL),
    _code("AG02", "InvalidBankOperationCode", "Operation code or file format invalid", "SCT+SDD", _A.MANUAL),
    _code("AM05", "Duplication", "Duplicate payment", "SCT+SDD", _A.MANUAL),
    _code("AM09", "WrongAmount", "Amount not the one agreed or expected", "SCT+SDD", _A.MANUAL),
    _code("AM10", "InvalidControlSum", "Control sum does not match the amounts", "SCT+SDD", _A.MANUAL),
    _code("DUPL", "DuplicatePayment", "Duplicate payment (recall)", "SCT", _A.MANUAL),
    _code("DU01", "DuplicateMessageID", "Message id already used (duplicate file)", "SCT+SDD", _A.MANUAL),
    _code("FF01", "InvalidFileFormat", "File format incomplete or invalid", "SCT+SDD", _A.MANUAL),
    _code("FOCR", "FollowingCancellationRequest", "Returned following a cancellation request (recall)", "SCT",
          _A.MANUAL),
    _code("RC01", "BankIdentifierIncorrect", "Bank identifier (BIC) incorrect", "SCT+SDD", _A.MANUAL),
    _code("RR01", "MissingDebtorAccountOrIdentification", "Regulatory: debtor account or identification missing",
          "SCT+SDD", _A.MANUAL),
    _code("RR02", "MissingDebtorNameOrAddress", "Regulatory: debtor name or address missing", "SCT+SDD", _A.MANUAL),
    _code("RR03", "MissingCreditorNameOrAddress", "Regulatory: creditor name or address missing", "SCT+SDD",
          _A.MANUAL),
    _code("RR04", "RegulatoryReason", "Regulatory reason", "SCT+SDD", _A.MANUAL),
    _code("TECH", "TechnicalProblem", "Technical problem resulting in an erroneous transfer (recall)", "SCT",
          _A.MANUAL),
    _code("UPAY", "UnduePayment", "Payment not justified (recall)", "SCT", _A.MANUAL),
    # The code hides the reason.
    _code("MS03", "NotSpecifiedReasonAgentGenerated", "Reason not specified by the bank", "SCT+SDD", _A.CAUTIOUS,
          "German banks report AM04 (insufficient funds) and MD07 (deceased) as MS03 for data protection."),
    _code("NARR", "Narrative", "Reason given as free text (see the additional information)", "SCT+SDD",
          _A.CAUTIOUS, "The real reason is only in AddtlInf; read it before acting."),
]  # fmt: skip

CATALOGUE: dict[str, ReasonCode] = {c.code: c for c in _CODES}


def reason(code: str | None) -> ReasonCode | None:
    """The catalogue entry for an ISO reason code (`'ac01 '` is read as `AC01`); None for unknown codes."""
    if not code:
        return None
    return CATALOGUE.get(code.strip().upper())
