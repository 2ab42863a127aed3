"""Manifest files -> validated desired models: loading, the language, its checks, the
JSON Schema, and the secrets behind ``${ENV}`` references. The lowest stage: it imports
no other.
"""
