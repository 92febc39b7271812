-- CI tokens scoped to deployments (issue 12): a token with deploy_services may only open
-- deployments of those services and work on them (items, moves, pipeline events, the gate);
-- it has the responder role, so it can never approve or waive, and the server refuses it
-- everywhere outside the deployments API.
ALTER TABLE api_tokens ADD COLUMN deploy_services TEXT[];
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_deploy_scope CHECK (
    deploy_services IS NULL
    OR (role = 'responder' AND cardinality(deploy_services) BETWEEN 1 AND 50));
