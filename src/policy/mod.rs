//! Access policies and playbooks.
