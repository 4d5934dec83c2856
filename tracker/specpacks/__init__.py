"""Spec packs: a qualification as data (schema.py), validated and loaded by loader.py."""
