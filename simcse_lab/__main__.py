"""`python -m simcse_lab`: the same CLI as `simcse-lab` (also what `accelerate launch -m simcse_lab` runs)."""

from simcse_lab.cli import main

if __name__ == "__main__":
    main()
