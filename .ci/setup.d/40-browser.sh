# Headless Chromium for the web page's browser test (tests/test_web_browser.py).
# Debian's package only (browser downloads by other tools fail on CI machines);
# the test drives it over the DevTools protocol with trio-websocket, so no
# WebDriver is needed. apt_install skips packages that are already there.
echo "browser: chromium and a font for the page's screenshot"
apt_install chromium fonts-dejavu-core
