-- Mutual TLS for publishing tools (issue 21): a tool may be bound to one client certificate. A
-- request with a bound tool's key (or a token issued under its checkouts) is then refused unless
-- the TLS connection presented that very certificate. The fingerprint is SHA-256 of the
-- certificate's DER (32 bytes); the subject is kept only for people to read. Both NULL: unbound,
-- the tool works with its key alone, as before. (SQLite: 0012_client_certificates.sql.)

ALTER TABLE clients ADD COLUMN cert_sha256 BYTEA CHECK (cert_sha256 IS NULL OR octet_length(cert_sha256) = 32);
ALTER TABLE clients ADD COLUMN cert_subject TEXT;
