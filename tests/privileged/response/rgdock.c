// SPDX-License-Identifier: Apache-2.0
// Test helper, built static by tests/privileged/response: the smallest Docker API client an
// attacker would drop into a container: connect to a runtime socket and ask for the containers.
//   rgdock PATH   connect(AF_UNIX, PATH), write "GET /containers/json", print the first reply line
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2)
		return 2;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("connect");
		return 1;
	}
	const char *req = "GET /containers/json HTTP/1.0\r\nHost: docker\r\n\r\n";
	if (write(fd, req, strlen(req)) < 0)
		return 1;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		printf("%s\n", buf);
	}
	return 0;
}
