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


def test_each_app_keeps_its_own_sign_in_counts(client, person, database_url, tmp_path):
    """Starting a second app in the same process (a field device beside its centre) neither resets the first
    app's failed sign-ins nor shares them."""
    from tracker import create_app

    token = form_token(client.get("/auth/login").get_data(as_text=True))
    for _ in range(10):
        client.post("/auth/login", data={"email": person.email, "password": "nope", "csrf_token": token})
    other = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url},
                       instance=tmp_path / "second")
    try:
        other_client = other.test_client()
        other_token = form_token(other_client.get("/auth/login").get_data(as_text=True))
        fresh = other_client.post("/auth/login", data={"email": person.email, "password": "nope",
                                                       "csrf_token": other_token})
        assert fresh.status_code == 401
        limited = client.post("/auth/login", data={"email": person.email, "password": "correct horse battery",
                                                   "csrf_token": token})
        assert limited.status_code == 429 and "Too many sign-in attempts" in limited.get_data(as_text=True)
    finally:
        other.extensions["engine"].dispose()


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
