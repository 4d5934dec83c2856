"""The refusals every path (web, sync, command line) reports the same way."""


class Refusal(Exception):
    """A request the tracker will not carry out, with a stable code and a plain message."""

    kind = "refused"

    def __init__(self, code: str, message: str, *, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, str | None]:
        """Return the refusal as plain data for JSON answers and logs."""
        return {"kind": self.kind, "code": self.code, "message": self.message, "field": self.field}


class InvalidInput(Refusal):
    """Input that is missing, malformed, or names something that does not exist."""

    kind = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_input"):
        super().__init__(code, message, field=field)


class InvalidText(InvalidInput):
    """Text holding a character the tracker never stores (NUL, another control character, an unpaired surrogate),
    or an email address with an invisible or markup character in it."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, field=field, code="invalid_text")


class AlreadyDone(Refusal):
    """A decision someone else (or this same request, sent twice) made first: the first one stands."""

    kind = "conflict"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__("already_decided", message, field=field)


class NotPermitted(Refusal):
    """An action this person's roles or relationships do not allow."""

    kind = "forbidden"

    def __init__(self, message: str, *, code: str = "not_permitted"):
        super().__init__(code, message)


class NotFound(Refusal):
    """A record that does not exist, or that this person may not know exists."""

    kind = "not_found"

    def __init__(self, what: str):
        super().__init__("not_found", f"No such {what}.")
