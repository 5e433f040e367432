-- Failed logins counted against a user, and the lock they lead to (domain/lockout.py).

ALTER TABLE app_user
    ADD COLUMN failed_logins      integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    ADD COLUMN first_failed_login timestamptz,
    ADD COLUMN locked_until       timestamptz;
