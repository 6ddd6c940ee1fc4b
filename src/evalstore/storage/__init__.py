"""Where documents live: the MongoDB client (the one driver import), its indexes, the
embedded test double (`mongomock://`), the local store (`file://`) and sync between stores.

Nothing outside this package calls a collection method: the service, the analysis
queries and the recorder go through `MongoDBClient`'s typed operations.
"""
