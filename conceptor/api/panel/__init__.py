"""The status panel: static HTML/JS/CSS that reads /api through the front-door."""
