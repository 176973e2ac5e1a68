"""Volume profiles (spec 000 §3): the names every entry point accepts.

``SEED_SIZE``, ``--profile`` and pytest's ``--seed-profile`` all validate
against :data:`PROFILE_NAMES`; MEDIUM is the default everywhere.
"""

PROFILE_NAMES: tuple[str, ...] = ("SMALL", "MEDIUM", "LARGE", "STRESS", "CUSTOM")
DEFAULT_PROFILE = "MEDIUM"
