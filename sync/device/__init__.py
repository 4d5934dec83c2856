"""The device's side of field sync: its outbox, the client that pushes and pulls, file downloads, enrolment."""
