"""Files on disk: the content-addressed store, streaming multipart uploads, and file
downloads with ``Range``. The database decides which files are in use (see
:mod:`fleetgate.services.binaries`); this package only moves bytes."""
