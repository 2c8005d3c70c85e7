/*
 * hello.cpp — a C++ iostream program under LD_PRELOAD=libmagpage.so.
 *
 * libstdc++ allocates (its emergency exception pool) in an initialiser that
 * runs before libmagpage's constructor, and operator new reaches the
 * preloaded malloc through the PLT.  Prints its greeting, then checks that
 * a page-sized std::vector and std::string come from the zone
 * (magpage_owns, found with dlsym) and survive a few reallocations.
 * Exits 0 with "hello from C++ under libmagpage" and "owned 1 1".
 */
#include <dlfcn.h>

#include <iostream>
#include <string>
#include <vector>

int main()
{
	std::cout << "hello from C++ under libmagpage" << std::endl;

	auto owns = reinterpret_cast<int (*)(const void *)>(dlsym(RTLD_DEFAULT, "magpage_owns"));
	if (!owns) {
		std::cout << "magpage_owns not found" << std::endl;
		return 1;
	}
	std::vector<char> v(8192, 'v');
	std::string s(10000, 's');
	std::cout << "owned " << owns(v.data()) << ' ' << owns(s.data()) << std::endl;

	std::vector<std::string> many;
	for (int i = 0; i < 1000; i++)
		many.emplace_back(4096 + i, static_cast<char>('a' + i % 26));
	for (int i = 0; i < 1000; i++)
		if (many[i].size() != static_cast<size_t>(4096 + i) ||
		    many[i][4095] != static_cast<char>('a' + i % 26)) {
			std::cout << "string " << i << " corrupt" << std::endl;
			return 1;
		}
	return 0;
}
