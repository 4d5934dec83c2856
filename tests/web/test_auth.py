"""Sign-in and sign-out, and the protections around them."""
import pytest

from support.web import form_token


@pytest.fixture
def person(backend, session, factory):
    """An assessor with an account, committed so the app can see them."""
    user = factory.assessor(name="Ann Assessor")
    session.commit()
    return user


def test_sign_in_and_out(client, person, sign_in):
    """The right password signs in, shows the home page, and sign-out ends the session."""
    response = sign_in(person)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and "Hello, Ann Assessor" in home.get_data(as_text=True)
    token = form_token(home.get_data(as_text=True))
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("email, password", [("ann@nowhere.test", "correct horse battery"), (None, "wrong password")])
def test_wrong_credentials_refused_with_one_message(client, person, email, password):
    """An unknown email or a wrong password gets the same message, and no session."""
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    response = client.post("/auth/login", data={"email": email or person.email, "password": password,
                                                "csrf_token": token})
    assert response.status_code == 401
    assert "The email address or password is not right." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sign_in_without_csrf_token_refused(client, person):
    """A sign-in form posted from elsewhere (no CSRF token) is refused."""
    response = client.post("/auth/login", data={"email": person.email, "password": "correct horse battery"})
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)


def test_failed_sign_ins_rate_limited(client, person):
    """After ten failed attempts in a minute, sign-in is refused for a while, even with the right password."""
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    for _ in range(10):
        client.post("/auth/login", data={"email": person.email, "password": "nope", "csrf_token": token})
    response = client.post("/auth/login", data={"email": person.email, "password": "correct horse battery",
                                                "csrf_token": token})
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.get_data(as_text=True)


def test_sign_in_counts_are_shared_by_every_server_process(client, person, database_url, tmp_path):
    """Failed sign-ins are counted in the database: a second server process on the same database refuses the
    eleventh try too, while a tracker on another database (a field device beside its centre) counts its own."""
    from tracker import create_app

    token = form_token(client.get("/auth/login").get_data(as_text=True))
    for _ in range(10):
        client.post("/auth/login", data={"email": person.email, "password": "nope", "csrf_token": token})
    other = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url},
                       instance=tmp_path / "second")
    device = create_app({"TESTING": True, "SECRET_KEY": "test-secret"}, instance=tmp_path / "device")
    try:
        for app, status in ((other, 429), (device, 401)):
            if app is device:
                from tracker.db import upgrade

                upgrade(app.extensions["engine"])
            second = app.test_client()
            second_token = form_token(second.get("/auth/login").get_data(as_text=True))
            answer = second.post("/auth/login", data={"email": person.email, "password": "correct horse battery",
                                                      "csrf_token": second_token})
            assert answer.status_code == status, answer.get_data(as_text=True)
    finally:
        other.extensions["engine"].dispose()
        device.extensions["engine"].dispose()


def test_logged_out_htmx_request_gets_hx_redirect(client, backend):
    """An htmx request from an expired session is told to redirect the whole page to sign-in."""
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"].startswith("/auth/login")


@pytest.mark.parametrize("target, expected", [("/?tab=1", "/?tab=1"), ("https://evil.test/", "/"),
                                              ("//evil.test/x", "/"), ("javascript:alert(1)", "/")])
def test_next_only_goes_to_this_site(client, person, target, expected):
    """After sign-in, `next` is followed only to a path on this site."""
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    response = client.post(f"/auth/login?next={target}", data={"email": person.email,
                                                               "password": "correct horse battery",
                                                               "csrf_token": token})
    assert response.headers["Location"] == expected


def test_security_headers_and_cookie_flags(client, person, sign_in):
    """Pages carry a CSP htmx works under and the session cookie is HttpOnly and SameSite=Lax."""
    response = sign_in(person)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and "HX-Request" in page.headers["Vary"]


def test_cookie_secure_over_https(client, person):
    """Over HTTPS the session cookie is marked Secure."""
    token = form_token(client.get("/auth/login", base_url="https://localhost").get_data(as_text=True))
    response = client.post("/auth/login", base_url="https://localhost",
                           data={"email": person.email, "password": "correct horse battery", "csrf_token": token})
    assert "Secure" in response.headers["Set-Cookie"]


# --- Sessions end on the server -----------------------------------------------------------------------------------


def _second_browser(app, client):
    """Return a client holding a copy of this client's session cookie (the cookie someone kept or stole)."""
    copy = app.test_client()
    cookie = client.get_cookie("session")
    copy.set_cookie("session", cookie.value)
    return copy


def test_session_cookie_is_dead_after_sign_out(app, client, person, sign_in):
    """Signing out ends the session on the server: a copy of the cookie taken before no longer opens any page."""
    sign_in(person)
    kept = _second_browser(app, client)
    assert kept.get("/").status_code == 200
    token = form_token(client.get("/").get_data(as_text=True))
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302
    assert kept.get("/").status_code == 302 and kept.get("/caseload/").status_code == 302


def test_session_ended_on_one_server_process_is_ended_on_another(app, client, person, sign_in, database_url,
                                                                  tmp_path):
    """Sessions end in the database: a second server process on the same database refuses the old cookie too."""
    from tracker import create_app

    sign_in(person)
    other = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url},
                       instance=tmp_path / "second")
    try:
        elsewhere = _second_browser(other, client)
        assert elsewhere.get("/").status_code == 200
        client.post("/auth/logout", data={"csrf_token": form_token(client.get("/").get_data(as_text=True))})
        assert elsewhere.get("/").status_code == 302
    finally:
        other.extensions["engine"].dispose()


def test_changing_the_password_ends_every_other_session(app, client, person, sign_in, session):
    """A new password signs the person out everywhere else; this browser stays signed in; the old password fails."""
    sign_in(person)
    other = _second_browser(app, client)
    page = client.get("/auth/password")
    assert page.status_code == 200 and "Change your password" in page.get_data(as_text=True)
    answer = client.post("/auth/password", data={
        "current": "correct horse battery", "password": "a brand new passphrase", "confirm": "a brand new passphrase",
        "csrf_token": form_token(page.get_data(as_text=True))})
    assert answer.status_code == 303
    assert client.get("/").status_code == 200 and other.get("/").status_code == 302
    fresh = app.test_client()
    assert fresh.post("/auth/login", data={"email": person.email, "password": "correct horse battery",
                                           "csrf_token": form_token(fresh.get("/auth/login").get_data(as_text=True))}
                      ).status_code == 401


@pytest.mark.parametrize("change, field, message", [
    ({"current": "wrong password!"}, "current", "Your current password is not right."),
    ({"confirm": "something else entirely"}, "confirm", "are not the same"),
    ({"password": "short", "confirm": "short"}, "password", "at least 10 characters"),
    ({"password": "tab\there is bad", "confirm": "tab\there is bad"}, "password", "U+0009"),
])
def test_a_refused_password_change_says_why_beside_the_field(client, person, sign_in, change, field, message):
    """A wrong current password, a mismatch or an unusable new one is refused beside its field; nothing changes."""
    sign_in(person)
    page = client.get("/auth/password").get_data(as_text=True)
    data = {"current": "correct horse battery", "password": "a brand new passphrase",
            "confirm": "a brand new passphrase"} | change
    answer = client.post("/auth/password", data=data | {"csrf_token": form_token(page)})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 422 and f'id="{field}-error"' in body and message in body
    assert client.get("/").status_code == 200  # still signed in with the old password


def test_closing_an_account_ends_its_sessions_at_once(app, client, person, sign_in, session, factory):
    """An administrator closing an account signs that person out everywhere, at once."""
    sign_in(person)
    admin = app.test_client()
    factory.admin
    session.commit()
    token = form_token(admin.get("/auth/login").get_data(as_text=True))
    admin.post("/auth/login", data={"email": "admin@centre.test", "password": "correct horse battery",
                                    "csrf_token": token})
    page = admin.get(f"/admin/people/{person.id}").get_data(as_text=True)
    answer = admin.post(f"/admin/people/{person.id}/close", data={"account_reason": "Left the centre",
                                                                  "csrf_token": form_token(page)})
    assert answer.status_code == 303
    assert client.get("/").status_code == 302
    assert "This account is closed" in admin.get(f"/admin/people/{person.id}").get_data(as_text=True)


# --- Guessing passwords -------------------------------------------------------------------------------------------


def _try(client, email, password="nope", address="192.0.2.1", headers=None):
    """Post the sign-in form from a client address."""
    token = form_token(client.get("/auth/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True))
    return client.post("/auth/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address}, headers=headers or {})


def test_a_second_address_gets_no_more_tries_at_the_same_account(client, person):
    """After ten failures at one account, the account refuses tries from anywhere for a while, with Retry-After."""
    for n in range(10):
        assert _try(client, person.email, address="192.0.2.1").status_code == 401
    answer = _try(client, person.email, "correct horse battery", address="198.51.100.7")
    assert answer.status_code == 429 and "Too many sign-in attempts" in answer.get_data(as_text=True)
    assert 0 < int(answer.headers["Retry-After"]) <= 15 * 60
    assert _try(client, "someone.else@centre.test", address="198.51.100.7").status_code == 401


def test_the_allowance_comes_back_when_the_window_has_passed(client, person, time_machine):
    """Once the oldest counted failure is fifteen minutes old, the person can sign in again."""
    from datetime import timedelta

    from support.factories import NOW

    for _ in range(10):
        _try(client, person.email)
    assert _try(client, person.email, "correct horse battery", address="198.51.100.7").status_code == 429
    time_machine.move_to(NOW + timedelta(minutes=16), tick=True)
    assert _try(client, person.email, "correct horse battery", address="198.51.100.7").status_code == 302


def test_an_unknown_email_costs_a_password_check_too(client, person, monkeypatch):
    """An unknown email address is refused only after a password has been checked, as for a known one, so the
    time taken never tells which addresses have accounts."""
    from tracker.services import people

    checked, real = [], people._hasher

    class Counting:
        hash = real.hash

        def verify(self, *args):  # noqa: ANN002, ANN202
            checked.append(args[0])
            return real.verify(*args)

    monkeypatch.setattr(people, "_hasher", Counting())
    for email in ("nobody@centre.test", person.email):
        assert _try(client, email).status_code == 401
    assert len(checked) == 2


@pytest.mark.parametrize("proxies", [0, 1])
def test_forwarded_headers_are_believed_only_from_a_configured_proxy(app, client, person, proxies):
    """Behind a configured proxy each client has its own allowance and the cookie is Secure over HTTPS; without
    one, X-Forwarded-For cannot buy a client more tries and X-Forwarded-Proto is ignored."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    for n in range(10):
        _try(client, f"guess{n}@centre.test", address="10.0.0.1", headers={"X-Forwarded-For": "203.0.113.9"})
    other_client = _try(client, person.email, "correct horse battery", address="10.0.0.1",
                        headers={"X-Forwarded-For": "203.0.113.10", "X-Forwarded-Proto": "https",
                                 "Referer": "https://localhost/auth/login"})
    assert other_client.status_code == (302 if proxies else 429)
    if proxies:
        assert "Secure" in other_client.headers["Set-Cookie"]


def test_trusted_proxies_setting_wraps_the_app(database_url, tmp_path):
    """TRUSTED_PROXIES in the config puts the app behind ProxyFix with that many hops; 0 (the default) does not."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    from tracker import create_app

    for hops in (0, 2):
        app = create_app({"TESTING": True, "SECRET_KEY": "s", "DATABASE_URL": database_url, "TRUSTED_PROXIES": hops},
                         instance=tmp_path / str(hops))
        assert isinstance(app.wsgi_app, ProxyFix) == bool(hops)
        if hops:
            assert app.wsgi_app.x_for == app.wsgi_app.x_proto == 2
        app.extensions["engine"].dispose()


@pytest.mark.parametrize("target", ["/caseload/\nSet-Cookie: x=1", "/\r\nLocation: https://evil.test/", "/\\evil.test",
                                    "/\x00"])
def test_next_with_a_line_break_or_backslash_goes_home(client, person, target):
    """A `next` that would split the Location header, or that browsers read as another site, is not followed."""
    from urllib.parse import quote

    token = form_token(client.get("/auth/login").get_data(as_text=True))
    answer = client.post(f"/auth/login?next={quote(target)}", data={
        "email": person.email, "password": "correct horse battery", "csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
