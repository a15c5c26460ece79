// Linux system interfaces that Swift's Glibc module does not export: epoll and eventfd,
// for the bench's HTTP load client (one event thread for all its connections).
#pragma once
#include <sys/epoll.h>
#include <sys/eventfd.h>
