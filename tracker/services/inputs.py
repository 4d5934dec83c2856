"""The input types every service's input models use: text, email addresses, dates and ids, each checked once here
for every path (pages, device pushes, the command line, pack imports).

Text is normalised to Unicode NFC (and, where a field takes several lines, its line ends to "\\n") before it is
checked, stored and hashed, so the same words typed on two devices are stored alike. Control characters are
refused: PostgreSQL cannot store NUL at all, and the others are invisible in every page that shows them.
"""
import re
import unicodedata
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

from ..errors import InvalidInput, InvalidText

# C0 controls (tab, line feed and carriage return aside), DEL, C1 controls and unpaired surrogates (which no
# database encoding can hold). A one-line field refuses tabs and line breaks too.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
BREAKS = re.compile("[\t\n\r\u2028\u2029]")
# An email address holds no spaces, no invisible (format) characters and none of the characters markup is made of.
EMAIL_REFUSED = set("<>()[]\\,;:\"'`")  # a plain space is left to the address's pattern ("enter an address")
EARLIEST, LATEST = date(1900, 1, 1), date(2100, 12, 31)  # the dates any field of the tracker can sensibly hold
NIL_IDS = (uuid.UUID(int=0), uuid.UUID(int=2**128 - 1))


def _character(char: str) -> str:
    """Name a character as people can look it up: its code point and what it is."""
    name = unicodedata.name(char, "") or {"\x00": "NUL", "\t": "TAB", "\n": "LINE FEED",
                                           "\r": "CARRIAGE RETURN"}.get(char, "a control character")
    return f"U+{ord(char):04X} ({name.lower()})"


def _refused_character(value: str, multiline: bool) -> str | None:
    """Return the first character of the text that no stored text may hold, if there is one."""
    found = CONTROL.search(value) or (None if multiline else BREAKS.search(value))
    return found.group() if found else None


def normalise(value: str, *, multiline: bool = False) -> str:
    """Return text in NFC with "\\n" line ends, or raise a ValueError naming the first character it refuses."""
    bad = _refused_character(value, multiline)
    if bad is not None:
        where = "" if multiline or bad not in "\t\n\r\u2028\u2029" else " on one line"
        raise ValueError(f"contains a character that cannot be stored{where}: {_character(bad)}. Remove it and try "
                         "again")
    text = unicodedata.normalize("NFC", value)
    return text.replace("\r\n", "\n").replace("\r", "\n") if multiline else text


def _text_before(multiline: bool):  # noqa: ANN202
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the string type itself says what is wrong with it
        try:
            return normalise(value.strip(), multiline=multiline)
        except ValueError as exc:
            raise PydanticCustomError("invalid_text", str(exc)) from None
    return check


def _email(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = _text_before(False)(value.strip()).lower()
    odd = next((c for c in value if c in EMAIL_REFUSED or (c != " " and unicodedata.category(c) in ("Cf", "Zs", "Zl",
                                                                                                  "Zp"))), None)
    if odd is not None:
        raise PydanticCustomError("invalid_text", "cannot contain {character}: an address never has spaces, "
                                  "invisible characters or markup in it. Type the address again",
                                  {"character": _character(odd)})
    return value


def _password(value: Any) -> Any:
    if isinstance(value, str) and (bad := CONTROL.search(value) or BREAKS.search(value)):
        raise PydanticCustomError("invalid_text", "contains a character no keyboard types: {character}. Choose "
                                  "another password", {"character": _character(bad.group())})
    return value


def _day(value: date) -> date:
    if not EARLIEST <= value <= LATEST:
        raise PydanticCustomError("date_range", "should be a date from 1 January 1900 to 31 December 2100")
    return value


def _moment(value: datetime) -> datetime:
    _day(value.date())
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _client_id(value: uuid.UUID) -> uuid.UUID:
    if value in NIL_IDS:
        raise PydanticCustomError("invalid_id", "should be the id made where the record was captured, not the "
                                  "all-zero or all-one id")
    return value


def line(max_length: int, *, min_length: int = 0) -> Any:
    """Return the type of one line of text (a title, a name, a code): NFC, no control characters, no line breaks,
    at most `max_length` characters once normalised."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     BeforeValidator(_text_before(False))]


def paragraphs(max_length: int, *, min_length: int = 0) -> Any:
    """Return the type of text that may run to several lines (a narrative, a note, feedback): NFC, "\\n" line ends,
    no other control characters, at most `max_length` characters once normalised."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     BeforeValidator(_text_before(True))]


# An email address: trimmed and lower-cased, refused with a control, invisible or markup character in it.
Email = Annotated[str, StringConstraints(max_length=254), BeforeValidator(_email)]
# A password, kept exactly as typed (never normalised: that would change what an existing hash was made from).
Password = Annotated[str, StringConstraints(min_length=10, max_length=1024), BeforeValidator(_password)]
# A calendar date within the range any of the tracker's dates can sensibly hold.
Day = Annotated[date, AfterValidator(_day)]
# A moment within that range; a moment without a zone is taken as UTC.
Moment = Annotated[datetime, AfterValidator(_moment)]
# An id made by a device or a form for a new record.
ClientId = Annotated[uuid.UUID, AfterValidator(_client_id)]


def text(value: object, field: str, *, max_length: int, label: str, multiline: bool = True,
         required: bool = False) -> str:
    """Return a text argument of a service (feedback, reasons, a note) normalised, or refuse it naming the field."""
    raw = "" if value is None else value
    if not isinstance(raw, str):
        raise InvalidInput(f"{label.capitalize()} should be text.", field=field)
    try:
        cleaned = normalise(raw, multiline=multiline).strip()
    except ValueError as exc:
        raise InvalidText(f"{label.capitalize()} {exc}.", field=field) from None
    if len(cleaned) > max_length:
        raise InvalidInput(f"Keep the {label} to at most {max_length:,} characters (it has {len(cleaned):,}).",
                           field=field)
    if required and not cleaned:
        raise InvalidInput(f"Give the {label}.", field=field)
    return cleaned


def day(value: date, field: str, label: str) -> date:
    """Return a date argument of a service, or refuse one outside the range any date can sensibly hold."""
    try:
        return _day(value)
    except PydanticCustomError:
        raise InvalidInput(f"Give {label} as a date from 1 January 1900 to 31 December 2100.", field=field) from None


def code(value: object) -> str | None:
    """Return a code taken from an address or a form (a criterion, a unit) if it could name anything, else None."""
    if not isinstance(value, str) or len(value) > 100 or _refused_character(value, False):
        return None
    return unicodedata.normalize("NFC", value.strip())
