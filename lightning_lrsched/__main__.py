from lightning_lrsched.cli import script

if __name__ == "__main__":
    script()
