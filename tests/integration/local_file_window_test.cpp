// The local host's file windows: from the start and from the end, long lines cut, binary files and
// directories refused, procfs files without a size, and the tail of a 2 GB file that reads only
// the tail.
#include "tests/support/local_host_fixture.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace smcp::exec {
namespace {

using LocalFileWindowTest = testing::LocalHostFixture;

std::uint64_t bytes_read_by_this_process() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uint64_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") {
      return value;
    }
  }
  return 0;
}

TEST_F(LocalFileWindowTest, FileWindowsFromStartAndEnd) {
  auto path = dir / "log.txt";
  {
    std::ofstream f(path);
    for (int i = 1; i <= 10; ++i) {
      f << "line " << i << "\n";
    }
  }
  FileReadRequest req;
  req.path = path.string();
  req.offset = 3;
  req.limit = 2;
  FileWindow w = host->read_file(req);
  EXPECT_EQ(w.lines, (std::vector<std::string>{"line 3", "line 4"}));
  EXPECT_EQ(w.start_line, 3);
  EXPECT_TRUE(w.more_before);
  EXPECT_TRUE(w.more_after);
  req.offset = -3;
  req.limit = 2000;
  w = host->read_file(req);
  EXPECT_EQ(w.lines, (std::vector<std::string>{"line 8", "line 9", "line 10"}));
  EXPECT_EQ(w.start_line, 8) << "small files get absolute line numbers";
  EXPECT_EQ(w.total_lines, 10);
  EXPECT_FALSE(w.more_after);
  req.offset = -50;
  w = host->read_file(req);
  EXPECT_EQ(w.start_line, 1);
  EXPECT_EQ(w.lines.size(), 10u);
  req.offset = 20;
  w = host->read_file(req);
  EXPECT_TRUE(w.lines.empty());
  EXPECT_EQ(w.total_lines, 10);
}

TEST_F(LocalFileWindowTest, FileWindowCutsLongLinesAndRefusesBinaryAndDirectories) {
  auto path = dir / "long.txt";
  {
    std::ofstream f(path);
    f << std::string(5000, 'x') << "\nshort";
  }
  FileReadRequest req;
  req.path = path.string();
  req.max_line_bytes = 100;
  FileWindow w = host->read_file(req);
  ASSERT_EQ(w.lines.size(), 2u);
  EXPECT_EQ(w.lines[0], std::string(100, 'x') + " [... line cut: 4900 more bytes]");
  EXPECT_EQ(w.lines[1], "short");
  EXPECT_TRUE(w.cut_lines);

  auto bin = dir / "bin";
  {
    std::ofstream f(bin, std::ios::binary);
    f << std::string("ELF\0\0\1", 6);
  }
  req.path = bin.string();
  try {
    host->read_file(req);
    FAIL();
  } catch (const HostError& e) {
    EXPECT_EQ(e.kind(), HostError::Kind::invalid);
    EXPECT_NE(std::string(e.what()).find("binary"), std::string::npos);
  }
  req.path = dir.string();
  try {
    host->read_file(req);
    FAIL();
  } catch (const HostError& e) {
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos);
  }
  req.path = (dir / "missing").string();
  try {
    host->read_file(req);
    FAIL();
  } catch (const HostError& e) {
    EXPECT_EQ(e.kind(), HostError::Kind::not_found);
  }
}

TEST_F(LocalFileWindowTest, ProcFilesWithoutASizeAreReadToTheirEnd) {
  FileReadRequest req;
  req.path = "/proc/self/status"; // size 0 in stat(), content on read
  FileWindow w = host->read_file(req);
  ASSERT_GT(w.lines.size(), 5u);
  EXPECT_EQ(w.lines[0].rfind("Name:", 0), 0u) << w.lines[0];
  req.offset = -1;
  w = host->read_file(req);
  ASSERT_EQ(w.lines.size(), 1u);
  EXPECT_GT(w.start_line, 5);
}

TEST_F(LocalFileWindowTest, TailOfATwoGigabyteFileReadsOnlyTheTail) {
  auto path = dir / "big.log";
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    std::string head;
    for (int i = 0; i < 1000; ++i) {
      head += "head line " + std::to_string(i) + "\n";
    }
    ASSERT_EQ(::write(fd, head.data(), head.size()), static_cast<ssize_t>(head.size()));
    // A sparse middle: reading it would cost 2 GB of reads (and show up in rchar).
    ASSERT_EQ(::ftruncate(fd, 2LL * 1024 * 1024 * 1024), 0);
    ::lseek(fd, 0, SEEK_END);
    std::string tail = "\n";
    for (int i = 0; i < 150; ++i) {
      tail += "tail line " + std::to_string(i) + "\n";
    }
    ASSERT_EQ(::write(fd, tail.data(), tail.size()), static_cast<ssize_t>(tail.size()));
    ::close(fd);
  }
  FileReadRequest req;
  req.path = path.string();
  req.offset = -100;
  auto before = bytes_read_by_this_process();
  FileWindow w = host->read_file(req);
  auto read = bytes_read_by_this_process() - before;
  ASSERT_EQ(w.lines.size(), 100u);
  EXPECT_EQ(w.lines.front(), "tail line 50");
  EXPECT_EQ(w.lines.back(), "tail line 149");
  EXPECT_EQ(w.start_line, -100) << "too large to count: numbered from the end";
  EXPECT_FALSE(w.total_lines);
  EXPECT_LT(read, 1024u * 1024u) << "read " << read << " bytes for a 100-line tail";
}

} // namespace
} // namespace smcp::exec
