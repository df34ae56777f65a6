"""The only code that speaks HTTP to Salesforce."""

from .client import InvocationResult, SalesforceClient
from .errors import SalesforceError

__all__ = ("InvocationResult", "SalesforceClient", "SalesforceError")
