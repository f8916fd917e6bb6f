# Headless Chromium for the browser test of the web page (tests/test_web_browser.py).
# Debian's package only: browser downloads by other tools fail on CI machines.
# The test drives it through the DevTools protocol with trio-websocket, so no
# WebDriver is needed.
if command -v chromium >/dev/null 2>&1; then
    echo "chromium: $(chromium --version 2>/dev/null || echo present)"
else
    apt_install chromium fonts-dejavu-core
fi
