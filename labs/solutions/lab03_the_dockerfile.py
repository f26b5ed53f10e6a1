"""Lab 03, the Dockerfile and the build cache: one solution per exercise (see labs/solutions/__init__.py)."""

SOLUTIONS = {
    "greet": (
        "%%dockerfile -t greet03-{run}\n"
        "FROM busybox\n"
        'ENTRYPOINT ["echo", "Hello,"]\n'
        'CMD ["world"]\n'
    ),
    "cache-order": (
        "%%writefile {shop}/Dockerfile\n"
        "FROM busybox\n"
        "WORKDIR /shop\n"
        "COPY deps.txt install-deps.sh ./\n"
        "RUN sh install-deps.sh\n"
        "COPY . .\n"
        'CMD ["sh", "main.sh"]\n'
    ),
    "dockerignore": (
        "%%writefile {shop}/.dockerignore\n"
        ".env\n"
    ),
    "multi-stage": (
        "%%dockerfile -t slim03-{run} --context {tools}\n"
        "FROM busybox AS build\n"
        "ADD toolchain.tar /opt/\n"
        "COPY hello.src /src/\n"
        "RUN /opt/toolchain/cc /src/hello.src /usr/local/bin/hello\n"
        "\n"
        "FROM busybox\n"
        "COPY --from=build /usr/local/bin/hello /usr/local/bin/hello\n"
        'CMD ["hello"]\n'
    ),
}
