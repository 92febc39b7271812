//! LLM cost alerts: the codes of the findings a budget raises (Lookout's budget evaluation in
//! `domain::services::llm_budgets` raises them; they are listed with every other code in
//! docs/findings.md).

use crate::framework::{CodeDoc, Severity};

pub const BUDGET_80: CodeDoc = CodeDoc {
    code: "LLM_BUDGET_80",
    severity: Severity::Warning,
    meaning: "A service, feature or tenant has spent (or, from the period so far, is forecast to spend) 80% of its weekly or monthly LLM budget.",
    remediation: "Open the weekly cost review filtered on the budget's scope: the change explanation names what drives the spend (volume, a model or feature mix, prices, a falling cache hit rate). Lower the volume, move the feature to a cheaper model, or raise the budget on purpose.",
};

pub const BUDGET_100: CodeDoc = CodeDoc {
    code: "LLM_BUDGET_100",
    severity: Severity::Critical,
    meaning: "A service, feature or tenant has spent (or is forecast to spend) its whole weekly or monthly LLM budget.",
    remediation: "As for LLM_BUDGET_80, now: find the driver in the cost review filtered on the scope, then throttle or re-route the expensive feature (a cheaper model, caching, shorter prompts) or approve the overspend and raise the budget.",
};
