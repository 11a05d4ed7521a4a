//! A handle for the crate's tests: serves the required methods and bans (recording them).

use std::cell::RefCell;

use crate::dto::{Applied, BanRequest, Ready, Version};
use crate::{ApiError, Control};

/// Ready, one worker; records the bans asked.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) bans: RefCell<Vec<BanRequest>>,
}

impl Control for Fake {
    fn ready(&self) -> Ready {
        Ready {
            ready: true,
            workers: 1,
            workers_reporting: 1,
        }
    }
    fn version(&self) -> Version {
        Version {
            version: "0".into(),
            uptime_secs: 1,
            workers: 1,
        }
    }
    fn config(&self) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({}))
    }
    fn metrics(&self) -> String {
        "sbc_up 1\n".into()
    }
    fn ban(&self, req: &BanRequest) -> Result<Applied, ApiError> {
        self.bans.borrow_mut().push(req.clone());
        Ok(Applied { workers: 1, of: 1 })
    }
}
