/* Level sources sharing one line (devices/irq_or.c): the wired-OR PCI INTx pins need. */
#include <criterion/criterion.h>
#include <linux/pci_regs.h>
#include <pthread.h>

#include "devices/irq_or.h"
#include "devices/pci.h"
#include "fixture_pci.h"

struct line_log {
	int level, sets, repeats;
};

static void line_set(void *opaque, unsigned int irq, int level)
{
	struct line_log *l = opaque;

	cr_assert_eq(irq, 42);
	/* Runs under the wired-OR's lock: the log is consistent even with threads. */
	if (l->sets && l->level == level)
		l->repeats++;
	l->level = level;
	l->sets++;
}

static struct line_log lg;
static struct irq_or wor;

static void setup(void)
{
	lg = (struct line_log){0};
	irq_or_init(&wor, (struct irq_line){line_set, &lg, 42});
}

static void teardown(void)
{
	irq_or_destroy(&wor);
}

TestSuite(irq_or, .init = setup, .fini = teardown);

Test(irq_or, one_source_deasserting_keeps_the_line_up_for_another)
{
	struct irq_line a, b;

	cr_assert_eq(irq_or_source(&wor, &a), 0);
	cr_assert_eq(irq_or_source(&wor, &b), 0);
	irq_line_set(&a, 1);
	cr_assert_eq(lg.level, 1);
	irq_line_set(&b, 1);
	irq_line_set(&a, 0);
	cr_assert_eq(lg.level, 1, "b still asserts");
	irq_line_set(&b, 0);
	cr_assert_eq(lg.level, 0);
	cr_assert_eq(lg.sets, 2, "only changes of the OR reach the line");
	irq_line_set(&b, 0);
	cr_assert_eq(lg.sets, 2);
}

Test(irq_or, pci_functions_on_one_line)
{
	struct pci_function f1, f2;

	pci_function_init(&f1, &test_ids, "f1");
	pci_function_init(&f2, &test_ids, "f2");
	cr_assert_eq(irq_or_source(&wor, &f1.intx), 0);
	cr_assert_eq(irq_or_source(&wor, &f2.intx), 0);
	pci_intx_set(&f1, 1);
	pci_intx_set(&f2, 1);
	/* The driver of f1 masks its INTx: f2's request must stay on the line. */
	pci_cfg_write_val(&f1, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	cr_assert_eq(lg.level, 1);
	pci_intx_set(&f2, 0);
	cr_assert_eq(lg.level, 0);
	pci_cfg_write_val(&f1, PCI_COMMAND, 2, 0);
	cr_assert_eq(lg.level, 1, "f1's request comes back when INTx is enabled again");
	pci_intx_set(&f1, 0);
	cr_assert_eq(lg.level, 0);
	pci_function_destroy(&f1);
	pci_function_destroy(&f2);
}

Test(irq_or, sources_run_out)
{
	struct irq_line l;

	for (int i = 0; i < IRQ_OR_MAX_SOURCES; i++)
		cr_assert_eq(irq_or_source(&wor, &l), 0);
	cr_assert_eq(irq_or_source(&wor, &l), -1);
	irq_line_set(&l, 1); /* the last one handed out still works */
	cr_assert_eq(lg.level, 1);
}

#define THREADS 4
#define TOGGLES 20000

struct toggler {
	struct irq_line line;
	int last;
};

static void *toggle(void *arg)
{
	struct toggler *t = arg;

	for (int i = 0; i < TOGGLES; i++)
		irq_line_set(&t->line, (i & 1) == 0);
	irq_line_set(&t->line, t->last);
	return NULL;
}

Test(irq_or, threads_toggling_leave_the_or_of_their_last_levels)
{
	struct toggler t[THREADS];
	pthread_t th[THREADS];

	for (int i = 0; i < THREADS; i++) {
		cr_assert_eq(irq_or_source(&wor, &t[i].line), 0);
		t[i].last = i == 2;
	}
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, toggle, &t[i]), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(lg.level, 1, "source 2 ended asserted");
	cr_assert_eq(lg.repeats, 0, "the line saw every change in order, never the same twice");
	irq_line_set(&t[2].line, 0);
	cr_assert_eq(lg.level, 0);
}
