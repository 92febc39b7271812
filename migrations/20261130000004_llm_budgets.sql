-- LLM budgets (issue 13): a weekly or monthly amount per service, feature or tenant; crossing
-- 80% or 100% of it (spent, or forecast from the period so far) opens an incident or adds a
-- finding to the scope's open one, once per budget, period and threshold.
CREATE TABLE llm_budgets (
    id BIGSERIAL PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('service', 'feature', 'tenant')),
    name TEXT NOT NULL CHECK (name <> '' AND length(name) <= 200),
    period TEXT NOT NULL CHECK (period IN ('week', 'month')),
    amount NUMERIC NOT NULL CHECK (amount > 0),
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (scope, name, period)
);

CREATE TABLE llm_budget_alerts (
    budget_id BIGINT NOT NULL REFERENCES llm_budgets(id) ON DELETE CASCADE,
    period_start DATE NOT NULL,
    threshold INT NOT NULL CHECK (threshold IN (80, 100)),
    basis TEXT NOT NULL CHECK (basis IN ('actual', 'forecast')),
    spent NUMERIC NOT NULL,
    forecast NUMERIC NOT NULL,
    incident_id BIGINT REFERENCES incidents(id) ON DELETE SET NULL,
    raised_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (budget_id, period_start, threshold)
);
