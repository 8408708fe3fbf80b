"""Run the web assistant: ``python app.py`` serves the bundled FAQ at http://127.0.0.1:7860/.

The index is built (or refreshed, when the corpus changed) on start. Every ``assistant serve``
flag works here too, e.g. ``python app.py --corpus my-faq/ --port 8000``.
"""

import sys

from assistant.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
