-- The publication watch follows a post after it went out (issue 24): WeChat reports an article
-- deleted by the account's own users (publish_status 5) or blocked by the platform after success
-- (6); Weibo answers a deleted status with 20101 and shows a restricted one's visibility. The
-- record moves on to `deleted`, `blocked` or `hidden`.
DROP TRIGGER posts_typed_insert;
DROP TRIGGER posts_typed_update;

CREATE TRIGGER posts_typed_insert BEFORE INSERT ON posts
WHEN NEW.status NOT IN ('sending', 'submitted', 'published', 'failed', 'deleted', 'blocked', 'hidden')
  OR NEW.platform NOT IN ('wechat', 'weibo')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: posts.status or posts.platform'); END;

CREATE TRIGGER posts_typed_update BEFORE UPDATE OF status ON posts
WHEN NEW.status NOT IN ('sending', 'submitted', 'published', 'failed', 'deleted', 'blocked', 'hidden')
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: posts.status'); END;
