"""Passwords are hashed with argon2id at the library's recommended, memory-hard cost."""
from argon2 import PasswordHasher, extract_parameters

from tracker.services import people


def test_production_hashing_is_memory_hard_argon2id(monkeypatch):
    """The hasher the tracker ships with uses argon2id and at least 64 MiB of memory."""
    monkeypatch.undo()  # put back the shipped hasher that the suite swaps for a cheap one
    shipped = people._hasher
    params = extract_parameters(shipped.hash("a long password"))
    assert params.type.name == "ID" and params.memory_cost >= 64 * 1024 and params.time_cost >= 2
    assert isinstance(shipped, PasswordHasher)


def test_hash_verifies_and_wrong_password_fails(backend, factory):
    """A stored hash accepts the right password only, and never stores the password itself."""
    user = factory.user(name="Pat")
    assert user.password_hash.startswith("$argon2id$") and "correct horse" not in user.password_hash
    assert people.verify_password(user, "correct horse battery")
    assert not people.verify_password(user, "correct horse batter")
