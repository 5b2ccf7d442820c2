package testproc

import "golang.org/x/sys/unix"

// zombie asks sysctl kern.proc.pid.<pid>, which lists zombies too, for the
// process' p_stat: SZOMB (5, xnu bsd/sys/proc.h) from the moment exit has
// closed its files and stopped its threads until its parent reaps it
// (proc_exit, bsd/kern/kern_exit.c).
func zombie(pid int) (bool, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return false, err
	}
	return kp.Proc.P_stat == 5, nil
}
