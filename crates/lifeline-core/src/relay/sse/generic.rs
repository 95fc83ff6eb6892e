//! Any other stream ([`super::Protocol::Generic`]: image generation's
//! partial images): released line by line like chat; content is any data
//! line that is not an `{"error":…}` object, and a clean close is the end
//! (no terminal event is required).

use super::Scanner;

impl Scanner {
    /// One data line; always progress.
    pub(super) fn generic(&mut self, p: &[u8]) -> bool {
        self.events += 1;
        if self.usage_or_error(p) {
            self.content = true;
        }
        true
    }
}
