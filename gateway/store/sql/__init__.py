"""The store's SQL, one module per concern: synchronous SQLAlchemy Core against a Connection.

Each function is one unit of work; the caller (gateway.store.database) decides the transaction.
"""
