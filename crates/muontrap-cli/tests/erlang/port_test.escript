#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% Opens the muontrap binary exactly as Elixir's MuonTrap does (spec section 3.9):
%% open_port({spawn_executable, Path}, [use_stdio, exit_status, binary, hide, {args, Args}]),
%% acknowledging every {Port, {data, D}} with port_command(Port, encode_acks(byte_size(D))).
%%
%% Usage: port_test.escript MUONTRAP FIXTURE PORT_MARKER
%%
%% Every port gets MUONTRAP_TEST_ID=PORT_MARKER in its environment (the BEAM itself carries a
%% different marker), so the Rust runner (tests/erlang_port.rs) can prove that nothing of a
%% port's tree is left while this BEAM is still alive.
%%
%% Prints one line per case, "PASS <name>" or "FAIL <name>: <why>". For the port_close case it
%% prints "CLOSED <os_pid>" after Port.close and waits for a line on stdin (the runner's go-ahead
%% once it has checked the marker). Exits 0 if every case passed, 1 otherwise.

-mode(compile).

main([Muontrap, Fixture, Marker]) ->
    Cases = [
        {"echo_hello", fun() -> echo_hello(Muontrap, Marker) end},
        {"print_100000_window_1024", fun() -> print_window(Muontrap, Fixture, Marker) end},
        {"port_close_stops_the_tree", fun() -> close_stops_tree(Muontrap, Marker) end}
    ],
    Results = [run_case(Name, Fun) || {Name, Fun} <- Cases],
    case lists:all(fun(R) -> R end, Results) of
        true -> halt(0);
        false -> halt(1)
    end;
main(_) ->
    io:format("usage: port_test.escript MUONTRAP FIXTURE PORT_MARKER~n"),
    halt(2).

run_case(Name, Fun) ->
    try Fun() of
        ok ->
            io:format("PASS ~s~n", [Name]),
            true;
        {error, Why} ->
            io:format("FAIL ~s: ~0p~n", [Name, Why]),
            false
    catch
        Class:Reason:Stack ->
            io:format("FAIL ~s: ~0p:~0p ~0p~n", [Name, Class, Reason, Stack]),
            false
    end.

open(Muontrap, Marker, Args) ->
    open_port({spawn_executable, Muontrap},
              [use_stdio, exit_status, binary, hide,
               {args, Args},
               {env, [{"MUONTRAP_TEST_ID", Marker}]}]).

%% MuonTrap.Port.encode_acks/1: N div 256 bytes of 255, then (N rem 256) - 1 if nonzero.
encode_acks(N) ->
    Full = binary:copy(<<255>>, N div 256),
    case N rem 256 of
        0 -> Full;
        R -> <<Full/binary, (R - 1)>>
    end.

%% MuonTrap.Port.report_bytes_handled/2: a closed port is not an error.
ack(Port, N) ->
    try port_command(Port, encode_acks(N)) catch error:badarg -> ok end.

%% Receives data (acking each chunk) until the exit status: {Data, Status, Chunks}.
collect(Port, Timeout) ->
    collect(Port, Timeout, [], []).

collect(Port, Timeout, Acc, Sizes) ->
    receive
        {Port, {data, D}} ->
            ack(Port, byte_size(D)),
            collect(Port, Timeout, [Acc, D], [byte_size(D) | Sizes]);
        {Port, {exit_status, Status}} ->
            {iolist_to_binary(Acc), Status, lists:reverse(Sizes)}
    after Timeout ->
        {timeout, iolist_to_binary(Acc)}
    end.

echo_hello(Muontrap, Marker) ->
    Port = open(Muontrap, Marker, ["--capture-output", "--", "/bin/echo", "hello"]),
    case collect(Port, 10000) of
        {<<"hello\n">>, 0, _} -> ok;
        Other -> {error, Other}
    end.

print_window(Muontrap, Fixture, Marker) ->
    Total = 100000,
    Port = open(Muontrap, Marker,
                ["--capture-output", "--stdio-window", "1024", "--",
                 Fixture, "print", integer_to_list(Total)]),
    Expected = binary:part(binary:copy(<<"0123456789abcdef">>, Total div 16 + 1), 0, Total),
    case collect(Port, 20000) of
        {Expected, 0, Sizes} ->
            case lists:max(Sizes) of
                Max when Max =< 1024 -> ok;
                Max -> {error, {chunk_larger_than_window, Max}}
            end;
        {Data, Status, _} when is_binary(Data) ->
            {error, {bytes, byte_size(Data), status, Status}};
        Other ->
            {error, Other}
    end.

close_stops_tree(Muontrap, Marker) ->
    Port = open(Muontrap, Marker,
                ["--capture-output", "--", "/bin/sh", "-c", "echo start; sleep 10"]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    receive
        {Port, {data, <<"start\n">> = D}} ->
            ack(Port, byte_size(D)),
            true = port_close(Port),
            io:format("CLOSED ~b~n", [OsPid]),
            %% The runner checks the marker now, while this BEAM keeps running.
            case io:get_line("") of
                "go\n" -> ok;
                Other -> {error, {runner_said, Other}}
            end;
        {Port, Msg} ->
            {error, {unexpected, Msg}}
    after 10000 ->
        {error, no_start}
    end.
