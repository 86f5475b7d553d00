//! HTTP routes. Each module exposes `configure`; [`configure`] mounts them all.

pub mod api;
pub mod health;
pub mod ui;

use actix_web::web;

/// Every route of the application.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .service(
            web::scope("/api/v1")
                .configure(api::auth::configure)
                .configure(api::workflows::configure)
                .configure(api::instances::configure)
                .configure(api::chains::configure)
                .configure(api::applications::configure)
                .configure(api::evidence::configure)
                .configure(api::obligations::configure)
                .configure(api::documents::configure)
                .configure(api::changes::configure)
                .configure(api::ismap::configure)
                .configure(api::structure_chart::configure)
                .configure(api::admin::configure)
                .configure(api::openapi::configure),
        )
        // Last: the UI's scope matches every path the others did not take.
        .configure(ui::configure);
}
