//! The `export!` macro and what it expands to.

use crate::Plugin;

/// Exports a [`Plugin`] type as the component's `hooks`, naming the hooks it
/// implements.
///
/// ```
/// use lacquer_plugin_sdk::{NoConfig, Plugin, RecvAction, Request};
///
/// struct Deny;
///
/// impl Plugin for Deny {
///     type Config = NoConfig;
///     fn new(_: NoConfig) -> Result<Self, String> {
///         Ok(Deny)
///     }
///     fn on_recv(&self, _req: &Request<'_>) -> RecvAction {
///         RecvAction::Synth(lacquer_plugin_sdk::SynthResponse::text(403, "no"))
///     }
/// }
///
/// lacquer_plugin_sdk::export!(Deny, hooks = [recv]);
/// ```
///
/// The hooks are `recv`, `backend_response`, `fetch_error` and `deliver`.
/// Only the listed ones are ever called: list exactly the methods you
/// override. The generated `init` parses the config with
/// [`parse_config`](crate::parse_config), calls [`Plugin::new`] and keeps the
/// plugin for the instance's lifetime; `contract-version` answers
/// [`CONTRACT_VERSION`](crate::CONTRACT_VERSION).
///
/// Off wasm the macro only checks its arguments, so the crate still builds
/// for native unit tests.
#[macro_export]
macro_rules! export {
    ($plugin:ty, hooks = [$($hook:ident),* $(,)?] $(,)?) => {
        const _: () = {
            #[allow(dead_code)]
            struct __LacquerExport;
            impl $crate::__private::Export for __LacquerExport {
                type Plugin = $plugin;
                const HOOKS: $crate::__private::Hooks =
                    $crate::__private::Hooks::NONE $(.with($crate::__lacquer_hook!($hook)))*;
            }
            $crate::__lacquer_export_wasm!(__LacquerExport);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __lacquer_hook {
    (recv) => {
        $crate::__private::Hooks::RECV
    };
    (backend_response) => {
        $crate::__private::Hooks::BACKEND_RESPONSE
    };
    (fetch_error) => {
        $crate::__private::Hooks::FETCH_ERROR
    };
    (deliver) => {
        $crate::__private::Hooks::DELIVER
    };
    ($other:ident) => {
        compile_error!(concat!(
            "unknown hook `",
            stringify!($other),
            "`: expected recv, backend_response, fetch_error or deliver"
        ))
    };
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[macro_export]
macro_rules! __lacquer_export_wasm {
    ($export:ident) => {
        type __LacquerGuest = $crate::__private::Adapter<$export>;
        $crate::wit::__export_plugin!(__LacquerGuest with_types_in $crate::wit);
    };
}

#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __lacquer_export_wasm {
    ($export:ident) => {};
}

/// A set of hooks, as listed in `export!`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks(u8);

impl Hooks {
    /// No hook.
    pub const NONE: Hooks = Hooks(0);
    /// `on-recv`.
    pub const RECV: Hooks = Hooks(1);
    /// `on-backend-response`.
    pub const BACKEND_RESPONSE: Hooks = Hooks(1 << 1);
    /// `on-fetch-error`.
    pub const FETCH_ERROR: Hooks = Hooks(1 << 2);
    /// `on-deliver`.
    pub const DELIVER: Hooks = Hooks(1 << 3);

    /// This set plus `other`.
    pub const fn with(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// The bits, in the order of the WIT `hook-set` flags.
    pub const fn bits(self) -> u8 {
        self.0
    }
}

/// What `export!` implements for its marker type.
pub trait Export: 'static {
    /// The exported plugin.
    type Plugin: Plugin;
    /// The hooks it implements.
    const HOOKS: Hooks;
}
