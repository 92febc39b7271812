-- A trace's last priced call (issue 13): a filtered review's top traces walk the trace costs,
-- dearest first, instead of grouping the week's records; a trace that began before the week
-- and went on into it must be among those walked. `last_day` is the day of the last priced call
-- in the rollup zone (as `day` is of the first); the partial index holds only the traces that
-- span days, so finding those that reach into a week reads few rows.
ALTER TABLE llm_traces ADD COLUMN last_at TIMESTAMPTZ, ADD COLUMN last_day DATE;
ALTER TABLE llm_trace_delta ADD COLUMN last_at TIMESTAMPTZ, ADD COLUMN last_day DATE;

UPDATE llm_traces t
   SET last_at = x.last_at
  FROM (SELECT trace_id, max(started_at) AS last_at
          FROM llm_usage
         WHERE trace_id IS NOT NULL AND cost IS NOT NULL
         GROUP BY trace_id) x
 WHERE x.trace_id = t.trace_id;
UPDATE llm_traces
   SET last_at = greatest(coalesce(last_at, first_at), first_at),
       last_day = ((greatest(coalesce(last_at, first_at), first_at)
                    + make_interval(secs => (SELECT offset_secs FROM llm_rollup_zone)))
                   AT TIME ZONE 'UTC')::date;
-- A delta not yet folded takes its trace's last priced call (the fold keeps the greatest).
UPDATE llm_trace_delta d
   SET last_at = greatest(first_at, coalesce((SELECT max(started_at) FROM llm_usage u
                                              WHERE u.trace_id = d.trace_id
                                                AND u.cost IS NOT NULL), first_at));
UPDATE llm_trace_delta
   SET last_day = ((last_at + make_interval(secs => (SELECT offset_secs FROM llm_rollup_zone)))
                   AT TIME ZONE 'UTC')::date;

ALTER TABLE llm_traces ALTER COLUMN last_at SET NOT NULL, ALTER COLUMN last_day SET NOT NULL;
ALTER TABLE llm_trace_delta ALTER COLUMN last_at SET NOT NULL, ALTER COLUMN last_day SET NOT NULL;

CREATE INDEX llm_traces_spanning ON llm_traces (last_day) WHERE last_day > day;

-- Ties in cost are ranked by trace id in byte order (`COLLATE "C"`) wherever top traces are
-- ranked — by index, in a walk that resumes after a trace id, or in memory — so every path
-- agrees whatever the database's collation.
DROP INDEX llm_traces_top;
CREATE INDEX llm_traces_top ON llm_traces (day, cost DESC, trace_id COLLATE "C");
