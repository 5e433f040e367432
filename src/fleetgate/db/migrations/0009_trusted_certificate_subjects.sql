-- mosquitto's TLS (OpenSSL) finds a device certificate's CA by the CA's subject name, and
-- once it has loaded one CA of a name it never loads another of the same name until it
-- restarts: a second CA with the subject of a stored one would be accepted and then
-- verify none of its devices. So each subject is held by one stored CA at most, compared
-- the way OpenSSL compares names (fleetgate.domain.trust.subject_key: case and runs of
-- white space do not count). Existing twins are kept (they are at worst what they were);
-- the service refuses new ones.
ALTER TABLE trusted_certificate ADD COLUMN subject_key text;
UPDATE trusted_certificate SET subject_key = lower(regexp_replace(btrim(subject), '\s+', ' ', 'g'));
ALTER TABLE trusted_certificate ALTER COLUMN subject_key SET NOT NULL;
CREATE INDEX trusted_certificate_subject_key ON trusted_certificate (subject_key);
