"""The centre's side of field sync: devices' tokens, pushes applied once each, pulls of a caseload, media in parts."""
