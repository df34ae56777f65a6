"""Prints a development .env: DEBUG on, fresh keys, and the local emulator allowed as a Salesforce host."""

import secrets
import sys

from cryptography.fernet import Fernet

emulator_port = sys.argv[1] if len(sys.argv) > 1 else "8765"
print("DEBUG=true")
print(f"SECRET_KEY={secrets.token_urlsafe(50)}")
print(f"FLOWGATE_ENCRYPTION_KEYS={Fernet.generate_key().decode()}")
print(f"FLOWGATE_EXTRA_SALESFORCE_HOSTS=127.0.0.1:{emulator_port}")
print(f"SALESFORCE_EMULATOR_URL=http://127.0.0.1:{emulator_port}")
