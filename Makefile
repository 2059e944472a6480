# The two commands of the README: `make book` and `make test`. Both install what they need
# into the active Python environment first (once; redone when pyproject.toml changes).
PYTHON ?= python3
SETUP_STAMP := _build/.setup-done

.PHONY: setup book book-instructor pdf publish test lint release benchmarks clean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml scripts/setup_env.py
	$(PYTHON) scripts/setup_env.py
	@mkdir -p $(dir $@) && touch $@

# The book: student edition (_build/html), instructor edition with every lab's solution
# (_build/instructor/html), the student edition as one PDF (_build/pdf/dgm-course.pdf, needs
# Debian's chromium), and publishing _build/html to the gh-pages branch of `origin`.
book: setup
	$(PYTHON) scripts/build_book.py

book-instructor: setup
	$(PYTHON) scripts/build_book.py --instructor

pdf: setup
	$(PYTHON) scripts/build_book.py --pdf

publish: setup
	$(PYTHON) scripts/build_book.py --publish

test: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest -n 2 --dist loadscope

release: setup
	$(PYTHON) -m dgm_lab.cli release

benchmarks: setup
	$(PYTHON) benchmarks/bench_density.py
	$(PYTHON) benchmarks/bench_device.py
	$(PYTHON) benchmarks/bench_notebooks.py
	$(PYTHON) benchmarks/bench_grading.py
	$(PYTHON) benchmarks/ch03_results.py
	$(PYTHON) benchmarks/ch05_results.py
	$(PYTHON) benchmarks/ch04_results.py
	$(PYTHON) benchmarks/ch08_results.py
	$(PYTHON) benchmarks/ch06_bench.py
	$(PYTHON) benchmarks/ch07_results.py
	$(PYTHON) benchmarks/ch12_results.py

clean:
	rm -rf _build
