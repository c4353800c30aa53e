"""Entry point of the filepipe provider plugin: the Python language host runs ``python provider/ <engine>``."""

from filepipe.plugin import host

if __name__ == "__main__":
    host()
