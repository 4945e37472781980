-- A run store as fslm 0.1.0 creates it (langgraph-checkpoint-postgres 3.2.0), holding one run: pg_dump --inserts.
-- tests/test_store_postgres.py checks that later versions still open it.
--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: checkpoint_blobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.checkpoint_blobs (
    thread_id text NOT NULL,
    checkpoint_ns text DEFAULT ''::text NOT NULL,
    channel text NOT NULL,
    version text NOT NULL,
    type text NOT NULL,
    blob bytea
);


--
-- Name: checkpoint_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.checkpoint_migrations (
    v integer NOT NULL
);


--
-- Name: checkpoint_writes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.checkpoint_writes (
    thread_id text NOT NULL,
    checkpoint_ns text DEFAULT ''::text NOT NULL,
    checkpoint_id text NOT NULL,
    task_id text NOT NULL,
    idx integer NOT NULL,
    channel text NOT NULL,
    type text,
    blob bytea NOT NULL,
    task_path text DEFAULT ''::text NOT NULL
);


--
-- Name: checkpoints; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.checkpoints (
    thread_id text NOT NULL,
    checkpoint_ns text DEFAULT ''::text NOT NULL,
    checkpoint_id text NOT NULL,
    parent_checkpoint_id text,
    type text,
    checkpoint jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL
);


--
-- Name: fslm_batches; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.fslm_batches (
    batch_id text NOT NULL,
    key text NOT NULL,
    started double precision NOT NULL
);


--
-- Name: fslm_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.fslm_runs (
    run_id text NOT NULL,
    pipeline text NOT NULL,
    pipeline_name text NOT NULL,
    pipeline_hash text NOT NULL,
    input text NOT NULL,
    status text NOT NULL,
    started double precision NOT NULL,
    seconds double precision,
    error text,
    parent_id text,
    replay_from text,
    batch_id text
);


--
-- Data for Name: checkpoint_blobs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', '__start__', '00000000000000000000000000000001.0.10988103617963507', 'msgpack', '\x83a5696e707574ab666972737420696e707574a76f75747075747380a36c6f6790');
INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', 'outputs', '00000000000000000000000000000002.0.5697005579693258', 'msgpack', '\x80');
INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', 'log', '00000000000000000000000000000002.0.5697005579693258', 'msgpack', '\x90');
INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', 'outputs', '00000000000000000000000000000003.0.6053557617512836', 'msgpack', '\x81a161a6612073617973');
INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', 'log', '00000000000000000000000000000003.0.6053557617512836', 'msgpack', '\x9188a57374616765a161a474657874a6612073617973a56d6f64656ca16da761646170746572c0a670726f6d7074ad4120666972737420696e707574ad70726f6d70745f746f6b656e7303b1636f6d706c6574696f6e5f746f6b656e7302a77365636f6e6473cb0000000000000000');
INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', 'outputs', '00000000000000000000000000000004.0.05316886972172252', 'msgpack', '\x82a161a6612073617973a162a6622073617973');
INSERT INTO public.checkpoint_blobs VALUES ('d9d0273f529d', '', 'log', '00000000000000000000000000000004.0.05316886972172252', 'msgpack', '\x9288a57374616765a161a474657874a6612073617973a56d6f64656ca16da761646170746572c0a670726f6d7074ad4120666972737420696e707574ad70726f6d70745f746f6b656e7303b1636f6d706c6574696f6e5f746f6b656e7302a77365636f6e6473cb000000000000000088a57374616765a162a474657874a6622073617973a56d6f64656ca16da761646170746572c0a670726f6d7074a84220612073617973ad70726f6d70745f746f6b656e7303b1636f6d706c6574696f6e5f746f6b656e7302a77365636f6e6473cb0000000000000000');


--
-- Data for Name: checkpoint_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.checkpoint_migrations VALUES (0);
INSERT INTO public.checkpoint_migrations VALUES (1);
INSERT INTO public.checkpoint_migrations VALUES (2);
INSERT INTO public.checkpoint_migrations VALUES (3);
INSERT INTO public.checkpoint_migrations VALUES (4);
INSERT INTO public.checkpoint_migrations VALUES (5);
INSERT INTO public.checkpoint_migrations VALUES (6);
INSERT INTO public.checkpoint_migrations VALUES (7);
INSERT INTO public.checkpoint_migrations VALUES (8);
INSERT INTO public.checkpoint_migrations VALUES (9);


--
-- Data for Name: checkpoint_writes; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62a4-6b94-bfff-07288cbb9350', '4d7c6497-41c5-f9c8-b3b3-a6f064977e9c', 0, 'input', 'msgpack', '\xab666972737420696e707574', '~__pregel_pull, __start__');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62a4-6b94-bfff-07288cbb9350', '4d7c6497-41c5-f9c8-b3b3-a6f064977e9c', 1, 'outputs', 'msgpack', '\x80', '~__pregel_pull, __start__');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62a4-6b94-bfff-07288cbb9350', '4d7c6497-41c5-f9c8-b3b3-a6f064977e9c', 2, 'log', 'msgpack', '\x90', '~__pregel_pull, __start__');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62a4-6b94-bfff-07288cbb9350', '4d7c6497-41c5-f9c8-b3b3-a6f064977e9c', 3, 'branch:to:a', 'null', '\x', '~__pregel_pull, __start__');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62c0-6093-8000-0241c9822257', '693e1119-d67d-8fd4-65e3-0818c299c523', 0, 'outputs', 'msgpack', '\x81a161a6612073617973', '~__pregel_pull, a');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62c0-6093-8000-0241c9822257', '693e1119-d67d-8fd4-65e3-0818c299c523', 1, 'log', 'msgpack', '\x9188a57374616765a161a474657874a6612073617973a56d6f64656ca16da761646170746572c0a670726f6d7074ad4120666972737420696e707574ad70726f6d70745f746f6b656e7303b1636f6d706c6574696f6e5f746f6b656e7302a77365636f6e6473cb0000000000000000', '~__pregel_pull, a');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62c0-6093-8000-0241c9822257', '693e1119-d67d-8fd4-65e3-0818c299c523', 2, 'branch:to:b', 'null', '\x', '~__pregel_pull, a');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62cb-689d-8001-3ab18d346bca', '9950ccb3-a80d-4374-6032-4c89ae651d06', 0, 'outputs', 'msgpack', '\x81a162a6622073617973', '~__pregel_pull, b');
INSERT INTO public.checkpoint_writes VALUES ('d9d0273f529d', '', '1f1ec46a-62cb-689d-8001-3ab18d346bca', '9950ccb3-a80d-4374-6032-4c89ae651d06', 1, 'log', 'msgpack', '\x9188a57374616765a162a474657874a6622073617973a56d6f64656ca16da761646170746572c0a670726f6d7074a84220612073617973ad70726f6d70745f746f6b656e7303b1636f6d706c6574696f6e5f746f6b656e7302a77365636f6e6473cb0000000000000000', '~__pregel_pull, b');


--
-- Data for Name: checkpoints; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.checkpoints VALUES ('d9d0273f529d', '', '1f1ec46a-62a4-6b94-bfff-07288cbb9350', NULL, NULL, '{"v": 4, "id": "1f1ec46a-62a4-6b94-bfff-07288cbb9350", "ts": "2026-11-29T22:46:00.485145+00:00", "versions_seen": {"__input__": {}}, "channel_values": {}, "channel_versions": {"__start__": "00000000000000000000000000000001.0.10988103617963507"}, "updated_channels": ["__start__"]}', '{"step": -1, "source": "input", "parents": {}, "pipeline": "/tmp/tmpyl_trfv3/p.yaml", "pipeline_hash": "219144c93d41ec85878b795392b9819bf0b47aaeee3c9e7204d3aad2604dac70"}');
INSERT INTO public.checkpoints VALUES ('d9d0273f529d', '', '1f1ec46a-62c0-6093-8000-0241c9822257', '1f1ec46a-62a4-6b94-bfff-07288cbb9350', NULL, '{"v": 4, "id": "1f1ec46a-62c0-6093-8000-0241c9822257", "ts": "2026-11-29T22:46:00.496319+00:00", "versions_seen": {"__input__": {}, "__start__": {"__start__": "00000000000000000000000000000001.0.10988103617963507"}}, "channel_values": {"input": "first input", "branch:to:a": null}, "channel_versions": {"log": "00000000000000000000000000000002.0.5697005579693258", "input": "00000000000000000000000000000002.0.5697005579693258", "outputs": "00000000000000000000000000000002.0.5697005579693258", "__start__": "00000000000000000000000000000002.0.5697005579693258", "branch:to:a": "00000000000000000000000000000002.0.5697005579693258"}, "updated_channels": ["branch:to:a", "input", "log", "outputs"]}', '{"step": 0, "source": "loop", "parents": {}, "pipeline": "/tmp/tmpyl_trfv3/p.yaml", "pipeline_hash": "219144c93d41ec85878b795392b9819bf0b47aaeee3c9e7204d3aad2604dac70"}');
INSERT INTO public.checkpoints VALUES ('d9d0273f529d', '', '1f1ec46a-62cb-689d-8001-3ab18d346bca', '1f1ec46a-62c0-6093-8000-0241c9822257', NULL, '{"v": 4, "id": "1f1ec46a-62cb-689d-8001-3ab18d346bca", "ts": "2026-11-29T22:46:00.501039+00:00", "versions_seen": {"a": {"branch:to:a": "00000000000000000000000000000002.0.5697005579693258"}, "__input__": {}, "__start__": {"__start__": "00000000000000000000000000000001.0.10988103617963507"}}, "channel_values": {"input": "first input", "branch:to:b": null}, "channel_versions": {"log": "00000000000000000000000000000003.0.6053557617512836", "input": "00000000000000000000000000000002.0.5697005579693258", "outputs": "00000000000000000000000000000003.0.6053557617512836", "__start__": "00000000000000000000000000000002.0.5697005579693258", "branch:to:a": "00000000000000000000000000000003.0.6053557617512836", "branch:to:b": "00000000000000000000000000000003.0.6053557617512836"}, "updated_channels": ["branch:to:b", "log", "outputs"]}', '{"step": 1, "source": "loop", "parents": {}, "pipeline": "/tmp/tmpyl_trfv3/p.yaml", "pipeline_hash": "219144c93d41ec85878b795392b9819bf0b47aaeee3c9e7204d3aad2604dac70"}');
INSERT INTO public.checkpoints VALUES ('d9d0273f529d', '', '1f1ec46a-62d4-695c-8002-4956322b5efa', '1f1ec46a-62cb-689d-8001-3ab18d346bca', NULL, '{"v": 4, "id": "1f1ec46a-62d4-695c-8002-4956322b5efa", "ts": "2026-11-29T22:46:00.504749+00:00", "versions_seen": {"a": {"branch:to:a": "00000000000000000000000000000002.0.5697005579693258"}, "b": {"branch:to:b": "00000000000000000000000000000003.0.6053557617512836"}, "__input__": {}, "__start__": {"__start__": "00000000000000000000000000000001.0.10988103617963507"}}, "channel_values": {"input": "first input"}, "channel_versions": {"log": "00000000000000000000000000000004.0.05316886972172252", "input": "00000000000000000000000000000002.0.5697005579693258", "outputs": "00000000000000000000000000000004.0.05316886972172252", "__start__": "00000000000000000000000000000002.0.5697005579693258", "branch:to:a": "00000000000000000000000000000003.0.6053557617512836", "branch:to:b": "00000000000000000000000000000004.0.05316886972172252"}, "updated_channels": ["log", "outputs"]}', '{"step": 2, "source": "loop", "parents": {}, "pipeline": "/tmp/tmpyl_trfv3/p.yaml", "pipeline_hash": "219144c93d41ec85878b795392b9819bf0b47aaeee3c9e7204d3aad2604dac70"}');


--
-- Data for Name: fslm_batches; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: fslm_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.fslm_runs VALUES ('d9d0273f529d', '/tmp/tmpyl_trfv3/p.yaml', 'p', '219144c93d41ec85878b795392b9819bf0b47aaeee3c9e7204d3aad2604dac70', 'first input', 'done', 1795992360.4699318, 0.03853654861450195, NULL, NULL, NULL, NULL);


--
-- Name: checkpoint_blobs checkpoint_blobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.checkpoint_blobs
    ADD CONSTRAINT checkpoint_blobs_pkey PRIMARY KEY (thread_id, checkpoint_ns, channel, version);


--
-- Name: checkpoint_migrations checkpoint_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.checkpoint_migrations
    ADD CONSTRAINT checkpoint_migrations_pkey PRIMARY KEY (v);


--
-- Name: checkpoint_writes checkpoint_writes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.checkpoint_writes
    ADD CONSTRAINT checkpoint_writes_pkey PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx);


--
-- Name: checkpoints checkpoints_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.checkpoints
    ADD CONSTRAINT checkpoints_pkey PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id);


--
-- Name: fslm_batches fslm_batches_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.fslm_batches
    ADD CONSTRAINT fslm_batches_pkey PRIMARY KEY (batch_id);


--
-- Name: fslm_runs fslm_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.fslm_runs
    ADD CONSTRAINT fslm_runs_pkey PRIMARY KEY (run_id);


--
-- Name: checkpoint_blobs_thread_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX checkpoint_blobs_thread_id_idx ON public.checkpoint_blobs USING btree (thread_id);


--
-- Name: checkpoint_writes_thread_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX checkpoint_writes_thread_id_idx ON public.checkpoint_writes USING btree (thread_id);


--
-- Name: checkpoints_thread_id_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX checkpoints_thread_id_idx ON public.checkpoints USING btree (thread_id);


--
-- Name: fslm_runs_batch; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX fslm_runs_batch ON public.fslm_runs USING btree (batch_id);


--
-- Name: fslm_runs_started; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX fslm_runs_started ON public.fslm_runs USING btree (started);


--
-- PostgreSQL database dump complete
--


