from lightning_lrsched.cli import main

if __name__ == "__main__":
    main()
