"""`python -m conceptor` is the `conceptor` command."""

from conceptor.cli import main

if __name__ == "__main__":
    main()
