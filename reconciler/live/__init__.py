"""What is live: the account's state as read through ``exotel``, the ledger of what the
reconciler owns, and the pairing rule that says which ledger entry and live trunk each
declared trunk is.
"""
