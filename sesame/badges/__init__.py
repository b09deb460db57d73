"""The organiser's badges: registrations, issuing, sheets, revocations."""
