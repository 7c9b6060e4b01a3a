-- Reviewed publishing: the post under review (sealed), the accounts one checkout publishes to,
-- what the platforms created under a checkout, and one evidence record per post.

-- 谁发布，谁负责: the evidence record names the operator's department.
ALTER TABLE users ADD COLUMN department TEXT;

-- The post a checkout carries for review, as AES-256-GCM ciphertext (AAD: checkout_content,
-- checkout id, "content"). `content_sha256` is the digest of the canonical JSON that was sealed.
CREATE TABLE checkout_content (
    checkout_id    TEXT PRIMARY KEY REFERENCES checkouts(id),
    content_sha256 TEXT NOT NULL,
    sealed         BLOB NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

-- Every account a checkout may publish to (one approved post, several platforms). The checkout's
-- own `account_id` is always one of them.
CREATE TABLE checkout_targets (
    checkout_id TEXT NOT NULL REFERENCES checkouts(id),
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (checkout_id, account_id)
) STRICT;

-- What a platform created through the vault under a checkout: uploaded inline images (`image_url`,
-- the URL), cover material (`thumb`, the media_id), drafts (`draft`, the media_id). Only these
-- may be referenced by later calls of the same checkout; a draft is `used` once it is submitted.
CREATE TABLE checkout_media (
    checkout_id TEXT NOT NULL REFERENCES checkouts(id),
    account_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (account_id, kind, platform_id)
) STRICT;

CREATE INDEX checkout_media_by_checkout ON checkout_media (checkout_id, account_id);

CREATE TRIGGER checkout_media_typed BEFORE INSERT ON checkout_media
WHEN NEW.kind NOT IN ('image_url', 'thumb', 'draft')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: checkout_media.kind'); END;

-- One evidence record per post that went out (or was sent) through the vault. Written before the
-- platform is called (status `sending`) and completed from its answer.
CREATE TABLE posts (
    id             TEXT PRIMARY KEY,
    checkout_id    TEXT NOT NULL REFERENCES checkouts(id),
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    platform       TEXT NOT NULL,
    operator       TEXT NOT NULL,
    department     TEXT,
    client_id      TEXT NOT NULL,
    -- the approved post (canonical content JSON), or NULL for a checkout bound by digests only
    content_sha256 TEXT,
    -- what the platform should show: WeChat the article's content HTML, Weibo the status text
    live_sha256    TEXT NOT NULL,
    -- JSON [{approver, at}] copied from the checkout when the post was sent
    approvals      TEXT NOT NULL,
    status         TEXT NOT NULL,
    media_id       TEXT,
    publish_id     TEXT,
    article_id     TEXT,
    article_url    TEXT,
    status_id      TEXT,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX posts_by_account ON posts (account_id, created_at);
CREATE INDEX posts_by_checkout ON posts (checkout_id);
CREATE INDEX posts_by_publish_id ON posts (publish_id);
CREATE INDEX posts_by_article_id ON posts (article_id);
CREATE INDEX posts_by_status_id ON posts (status_id);
-- An approved post goes out once per account: a second attempt needs the first to have failed.
CREATE UNIQUE INDEX posts_once_per_target ON posts (checkout_id, account_id) WHERE status <> 'failed';

CREATE TRIGGER posts_typed_insert BEFORE INSERT ON posts
WHEN NEW.status NOT IN ('sending', 'submitted', 'published', 'failed')
  OR NEW.platform NOT IN ('wechat', 'weibo')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: posts.status or posts.platform'); END;

CREATE TRIGGER posts_typed_update BEFORE UPDATE OF status ON posts
WHEN NEW.status NOT IN ('sending', 'submitted', 'published', 'failed')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: posts.status'); END;
