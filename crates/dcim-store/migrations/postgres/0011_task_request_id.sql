-- The id of the HTTP request that started a task (X-Request-Id, or the one dcim made),
-- so the task's log lines can be found from the request's.
ALTER TABLE tasks ADD COLUMN request_id TEXT;
