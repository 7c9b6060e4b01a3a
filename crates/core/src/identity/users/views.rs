//! What the API shows of people: the view of a user (never a hash or a seed) with the roles that
//! wait for a second admin, one person or all of them.

use serde::Serialize;

use super::People;
use crate::actor::Actor;
use crate::error::Result;
use crate::identity::Role;
use crate::store::users::UserRow;

/// What the API shows of a user: never a hash or a seed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub department: Option<String>,
    pub disabled: bool,
    pub locked_until: Option<String>,
    pub created_at: String,
    /// Privileged roles asked for and waiting for a second admin's confirmation.
    pub pending_roles: Vec<String>,
}

/// How a stored person is shown (the row is the store's; the view is this service's).
pub trait UserRowView {
    fn view(&self) -> UserView;
}

impl UserRowView for UserRow {
    fn view(&self) -> UserView {
        UserView {
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self
                .roles
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            department: self.department.clone(),
            disabled: self.disabled,
            locked_until: self.locked_until.map(crate::clock::rfc3339_unix),
            created_at: crate::clock::rfc3339_unix(self.created_at),
            pending_roles: Vec::new(),
        }
    }
}

impl People {
    pub async fn list(&self, actor: &Actor) -> Result<Vec<UserView>> {
        actor.action("user.list", None);
        actor.require(&[Role::Admin])?;
        let grants = self.store.grants_pending(None).await?;
        Ok(self
            .store
            .users_list()
            .await?
            .iter()
            .map(|u| {
                let mut view = u.view();
                view.pending_roles = grants
                    .iter()
                    .filter(|g| g.username == u.username)
                    .map(|g| g.role.clone())
                    .collect();
                view
            })
            .collect())
    }

    pub async fn get(&self, actor: &Actor, username: &str) -> Result<UserView> {
        actor.action("user.get", Some(username));
        actor.require(&[Role::Admin])?;
        self.view(&self.row(username).await?).await
    }

    pub(super) async fn view(&self, row: &UserRow) -> Result<UserView> {
        let mut view = row.view();
        view.pending_roles = self
            .store
            .grants_pending(Some(&row.username))
            .await?
            .into_iter()
            .map(|g| g.role)
            .collect();
        Ok(view)
    }
}
