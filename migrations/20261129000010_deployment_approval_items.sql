-- approval items (issue 12): a sign-off inside the checklist, checked by an approver who is
-- not the requester.
ALTER TABLE deployment_items DROP CONSTRAINT deployment_items_kind;
ALTER TABLE deployment_items ADD CONSTRAINT deployment_items_kind
    CHECK (kind IN ('manual', 'approval', 'metric', 'probe', 'kafka_lag'));
